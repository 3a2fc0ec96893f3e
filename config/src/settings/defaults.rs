//! Default values of the configuration keys.

pub(super) fn default_max_connections() -> u32 {
    256
}

pub(super) fn default_header_timeout_secs() -> u64 {
    10
}

pub(super) fn default_stall_timeout_secs() -> u64 {
    60
}

pub(super) fn default_delivery_limit() -> u32 {
    5
}
pub(super) fn default_reconnect_max_secs() -> u64 {
    30
}
pub(super) fn default_gerrit_port() -> u16 {
    29418
}
pub(super) fn default_recheck_phrase() -> String {
    "recheck".into()
}
/// The longest `recheck_window_secs`: a year.
pub const MAX_RECHECK_WINDOW_SECS: u64 = 365 * 24 * 3600;

pub(super) fn default_recheck_limit() -> u32 {
    3
}
pub(super) fn default_recheck_window_secs() -> u64 {
    3600
}
pub(super) fn default_catchup_margin_secs() -> u64 {
    300
}
pub(super) fn default_ssh_command_timeout_secs() -> u64 {
    60
}
pub(super) fn default_git_timeout_secs() -> u64 {
    600
}
pub(super) fn default_keepalive_secs() -> u64 {
    15
}
pub(super) fn default_submit_wait_ms() -> u64 {
    3000
}
pub(super) fn default_build_timeout_secs() -> u64 {
    3 * 3600
}
pub(super) fn default_max_log_bytes() -> u64 {
    64 << 20
}
pub(super) fn default_tmpfs_size() -> String {
    "8g".into()
}
pub(super) fn default_tmp_size() -> String {
    "2g".into()
}
pub(super) fn default_memory() -> String {
    "12g".into()
}
pub(super) fn default_max_source_bytes() -> u64 {
    2 << 30
}
pub(super) fn default_max_result_bytes() -> u64 {
    4 << 30
}
pub(super) fn default_max_results() -> u32 {
    1000
}

/// Bytes of a size written as digits with an optional `k`, `m` or `g` ("512m", "8g").
pub fn size_bytes(size: &str) -> Option<u64> {
    let (digits, shift) = match size.as_bytes().last()? {
        b'k' => (&size[..size.len() - 1], 10),
        b'm' => (&size[..size.len() - 1], 20),
        b'g' => (&size[..size.len() - 1], 30),
        _ => (size, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}
pub(super) fn default_slots() -> u16 {
    1
}
pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_suites() -> Vec<String> {
    ["proposed", "updates", "security", "holdback", "hotfix"]
        .map(String::from)
        .to_vec()
}
pub(super) fn default_keep_generations() -> u32 {
    3
}
pub(super) fn default_arches() -> Vec<String> {
    vec!["amd64".into()]
}
