use super::*;

#[test]
fn users_and_virtual_hosts_of_urls() {
    assert_eq!(user_of("amqp://farm:pw@h:5672/%2f"), "farm");
    assert_eq!(user_of("amqps://h/"), "guest");
    assert_eq!(vhost_of("amqp://u:p@h:5672/%2f"), "/");
    assert_eq!(vhost_of("amqp://u:p@h:5672/farm?heartbeat=10"), "farm");
    assert_eq!(vhost_of("amqp://u:p@h:5672"), "/");
}

#[test]
fn credentials_are_not_shown() {
    assert_eq!(
        strip_credentials("amqp://user:secret@host:5672/%2f"),
        "amqp://host:5672/%2f"
    );
    assert_eq!(strip_credentials("amqp://host/"), "amqp://host/");
}

#[test]
fn header_text_is_capped_on_a_char_boundary_with_a_marker() {
    assert_eq!(header_text("short reason"), "short reason");
    let fits = "x".repeat(MAX_HEADER_TEXT);
    assert_eq!(header_text(&fits), fits);
    // Two-byte chars, so that the cut falls inside one unless it is moved.
    for long in [
        "é".repeat(MAX_HEADER_TEXT),
        format!("a{}", "é".repeat(600_000)),
    ] {
        let capped = header_text(&long);
        assert!(capped.len() <= MAX_HEADER_TEXT, "{}", capped.len());
        assert!(capped.len() > MAX_HEADER_TEXT - 16, "{}", capped.len());
        assert!(capped.ends_with(" … [cut]"));
        let kept = capped.strip_suffix(" … [cut]").unwrap();
        assert!(long.starts_with(kept));
    }
}
