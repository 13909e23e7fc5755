//! `bulwark-alert` against real loopback HTTP receivers: payload shapes, retries that honour
//! 429 and `Retry-After`, failures journaled as `notify.failed`, URLs never shown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bulwark_alert::{Message, Notifier, RetryPolicy};
use bulwark_core::Journal;
use bulwark_core::config::{Duration as CfgDuration, NotifyConfig, NotifyKind};
use bulwark_testutil::TestEnv;
use bulwark_testutil::http::{HttpServer, Response, refused_url};

fn target(kind: NotifyKind, url: &str, attempts: u32) -> NotifyConfig {
    NotifyConfig { timeout: CfgDuration::from_secs(5), attempts, ..NotifyConfig::new(kind, url) }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(10),
    }
}

fn notifier(env: &TestEnv, targets: &[NotifyConfig]) -> Notifier {
    Notifier::from_config(targets).unwrap().with_journal(Journal::in_dir(&env.state_dir())).with_retry_policy(fast())
}

fn message() -> Message {
    Message::new("drift.found", "drift on web-1", "- /srv/app: modified: app.py")
        .with_fields(serde_json::json!({"findings": 1}))
}

#[test]
fn discord_slack_and_webhook_get_their_own_shapes() {
    let env = TestEnv::new();
    let server = HttpServer::start(|_| Response::status(204));
    let n = notifier(
        &env,
        &[
            target(NotifyKind::Discord, &server.url("/discord/TOKEN1"), 1),
            target(NotifyKind::Slack, &server.url("/slack/TOKEN2"), 1),
            target(NotifyKind::Webhook, &server.url("/hook/TOKEN3"), 1),
        ],
    );
    let report = n.send(&message());
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.delivered.len(), 3);
    let requests = server.requests();
    let by_path = |p: &str| requests.iter().find(|r| r.path == p).unwrap_or_else(|| panic!("no request to {p}")).json();
    assert_eq!(by_path("/discord/TOKEN1")["content"], "**drift on web-1**\n- /srv/app: modified: app.py");
    assert_eq!(by_path("/slack/TOKEN2")["text"], "*drift on web-1*\n- /srv/app: modified: app.py");
    let hook = by_path("/hook/TOKEN3");
    assert_eq!(hook["kind"], "drift.found");
    assert_eq!(hook["fields"]["findings"], 1);
    assert!(requests.iter().all(|r| r.header("content-type") == Some("application/json")));
    let sent = env.events_of("notify.sent");
    assert_eq!(sent.len(), 3);
    let journal = std::fs::read_to_string(env.state_dir().join("events.jsonl")).unwrap();
    assert!(!journal.contains("TOKEN"), "a URL token reached the journal:\n{journal}");
}

#[test]
fn a_429_with_retry_after_then_200_is_exactly_one_delivery() {
    let env = TestEnv::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = HttpServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Response::status(429).header("Retry-After", "1")
        } else {
            Response::status(200)
        }
    });
    let n = notifier(&env, &[target(NotifyKind::Webhook, &server.url("/hook/SECRET"), 4)]);
    let started = Instant::now();
    let report = n.send(&message());
    assert!(report.all_delivered(), "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2, "one refused (429) and one accepted request");
    let sent = env.events_of("notify.sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].fields["attempts"], 2);
    assert!(env.events_of("notify.failed").is_empty());
}

#[test]
fn a_dead_receiver_is_journaled_as_notify_failed_without_the_url() {
    let env = TestEnv::new();
    let url = refused_url("/hooks/VERY-SECRET-TOKEN");
    let n = notifier(&env, &[target(NotifyKind::Slack, &url, 3)]);
    let report = n.send(&message());
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let (label, reason) = &report.failed[0];
    assert!(label.starts_with("slack http://127.0.0.1:"), "{label}");
    assert!(!label.contains("VERY-SECRET-TOKEN") && !reason.contains("VERY-SECRET-TOKEN"), "{label} {reason}");
    assert!(reason.contains("after 3 attempts"), "{reason}");
    let failed = env.events_of("notify.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].str("about"), Some("drift.found"));
    let journal = std::fs::read_to_string(env.state_dir().join("events.jsonl")).unwrap();
    assert!(!journal.contains("VERY-SECRET-TOKEN"), "{journal}");
}

#[test]
fn a_client_error_is_not_retried() {
    let env = TestEnv::new();
    let server = HttpServer::start(|_| Response::status(404).body("unknown webhook"));
    let n = notifier(&env, &[target(NotifyKind::Discord, &server.url("/x"), 4)]);
    let report = n.send(&message());
    assert_eq!(server.requests().len(), 1);
    assert_eq!(report.failed[0].1, "HTTP 404: unknown webhook");
}

#[test]
fn a_retry_after_longer_than_the_cap_fails_at_once() {
    let env = TestEnv::new();
    let server = HttpServer::start(|_| Response::status(429).header("Retry-After", "3600"));
    let n = notifier(&env, &[target(NotifyKind::Webhook, &server.url("/x"), 4)]);
    let started = Instant::now();
    let report = n.send(&message());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.requests().len(), 1);
    assert!(report.failed[0].1.contains("Retry-After 3600s"), "{:?}", report.failed);
}

#[test]
fn a_server_error_is_retried_with_backoff_until_attempts_run_out() {
    let env = TestEnv::new();
    let server = HttpServer::start(|_| Response::status(503));
    let n = notifier(&env, &[target(NotifyKind::Webhook, &server.url("/x"), 3)]);
    let report = n.send(&message());
    assert_eq!(server.requests().len(), 3);
    assert_eq!(report.failed[0].1, "HTTP 503 (after 3 attempts)");
}

#[test]
fn a_hanging_receiver_times_out() {
    let env = TestEnv::new();
    let server = HttpServer::start(|_| Response::status(200).delay(Duration::from_secs(30)));
    let mut cfg = target(NotifyKind::Webhook, &server.url("/x"), 1);
    cfg.timeout = CfgDuration::from_millis(300);
    let n = notifier(&env, &[cfg]);
    let started = Instant::now();
    let report = n.send(&message());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(report.failed.len(), 1, "{report:?}");
}

#[test]
fn a_background_send_does_not_block_the_caller() {
    let env = TestEnv::new();
    let server = HttpServer::start(|_| Response::status(200).delay(Duration::from_millis(500)));
    let n = notifier(&env, &[target(NotifyKind::Webhook, &server.url("/x"), 1)]);
    let started = Instant::now();
    let handle = n.send_in_background(message());
    assert!(started.elapsed() < Duration::from_millis(400), "send_in_background waited for the receiver");
    let report = handle.join().unwrap();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(env.events_of("notify.sent").len(), 1);
}
