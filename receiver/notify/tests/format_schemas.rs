//! Every channel's payload, for a range of notices (every event and
//! severity, summaries, notices missing every optional field, and notices
//! whose every text is hostile and longer than core allows), validated
//! against a JSON Schema written from that service's documentation
//! (`tests/schemas/*.schema.json`, each naming its sources in `$comment`),
//! plus the limits a schema cannot say (bytes of a Teams message, of a Bark
//! push). Each schema is also shown to refuse what the service refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;

use jiff::Timestamp;
use jsonschema::Validator;
use receiver_core::guard::RefusalReason;
use receiver_core::notify::{Event, Links, Notice, Severity};
use receiver_core::remediation::RemediationKind;
use receiver_core::signal::SourceKind;
use receiver_notify::format;
use serde_json::{Value, json};

const SLACK: &str = include_str!("schemas/slack.schema.json");
const TEAMS: &str = include_str!("schemas/teams.schema.json");
const DINGTALK: &str = include_str!("schemas/dingtalk.schema.json");
const BARK: &str = include_str!("schemas/bark.schema.json");
const PAGERDUTY: &str = include_str!("schemas/pagerduty.schema.json");

/// A PagerDuty integration key is 32 characters.
const ROUTING_KEY: &str = "R0123456789abcdef0123456789abcde";

/// Teams: "The message size limit is 28 KB".
const TEAMS_MAX_BYTES: usize = 28 * 1024;
/// Bark: what heal8s sends must leave room in a 4096-byte APNs payload for
/// the `aps` wrapper and Bark's own keys.
const BARK_MAX_BYTES: usize = 3400;

const HOSTILE: &str = "<!channel> <!here> <@U0123> *bold* _it_ ~s~ `code` [a](http://evil.example) ![i](http://evil.example/p.png) <http://evil.example|click> # h > q {{DATE(2017-02-14T06:08:00Z)}} @13800000000 ";

struct Schemas {
    slack: Validator,
    teams: Validator,
    dingtalk: Validator,
    bark: Validator,
    pagerduty: Validator,
}

fn validator(name: &str, text: &str) -> Validator {
    let schema: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        schema["$comment"]
            .as_str()
            .is_some_and(|c| c.contains("https://")),
        "{name} names its documentation in $comment"
    );
    jsonschema::meta::validate(&schema)
        .unwrap_or_else(|e| panic!("{name} is not a JSON Schema: {e}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn schemas() -> Schemas {
    Schemas {
        slack: validator("slack", SLACK),
        teams: validator("teams", TEAMS),
        dingtalk: validator("dingtalk", DINGTALK),
        bark: validator("bark", BARK),
        pagerduty: validator("pagerduty", PAGERDUTY),
    }
}

fn errors(v: &Validator, payload: &Value) -> Vec<String> {
    v.iter_errors(payload)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn valid(name: &str, v: &Validator, payload: &Value, what: &str) {
    let e = errors(v, payload);
    assert!(e.is_empty(), "{name} for {what}: {e:#?}\n{payload:#}");
}

fn invalid(name: &str, v: &Validator, payload: &Value) {
    assert!(
        !errors(v, payload).is_empty(),
        "{name} should refuse {payload:#}"
    );
}

fn at() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

/// A notice as core makes one: every field there is.
fn full(event: Event) -> Notice {
    Notice {
        event,
        severity: Severity::High,
        at: at(),
        cluster: Some("prod".into()),
        namespace: Some("shop".into()),
        kind: Some("Pod".into()),
        name: Some("api-1".into()),
        target: Some("Pod shop/api-1".into()),
        remediation: Some(RemediationKind::DeletePod),
        route: Some("crashloop".into()),
        source: SourceKind::Alert,
        signal: "KubePodCrashLooping".into(),
        result: "acted".into(),
        reason: None,
        title: "Done: delete pod shop/api-1".into(),
        message: "deleted pod shop/api-1".into(),
        evidence: BTreeMap::from([
            ("reason".to_string(), "CrashLoopBackOff".to_string()),
            ("restarts".to_string(), "7".to_string()),
        ]),
        links: Links {
            pull_request: Some("https://github.example/org/gitops/pull/42".into()),
            runbook: Some("https://runbooks.example/crashloop".into()),
            source: Some("http://[::1]:9090/graph?g0.expr=rate%28x%5B5m%5D%29&g0.tab=1".into()),
            record: Some("https://heal8s.example/#rem-api-1".into()),
        },
        record: Some("rem-api-1".into()),
        key: "Deployment/shop/api".into(),
        count: 1,
        examples: Vec::new(),
    }
}

/// A notice with nothing optional: no cluster, target, remediation, route,
/// reason, evidence, links, record; and empty texts.
fn bare(event: Event) -> Notice {
    Notice {
        event,
        severity: Severity::Info,
        at: at(),
        cluster: None,
        namespace: None,
        kind: None,
        name: None,
        target: None,
        remediation: None,
        route: None,
        source: SourceKind::Detector,
        signal: String::new(),
        result: String::new(),
        reason: None,
        title: String::new(),
        message: String::new(),
        evidence: BTreeMap::new(),
        links: Links::default(),
        record: None,
        key: String::new(),
        count: 1,
        examples: Vec::new(),
    }
}

/// A summary of 12 notices, naming 5.
fn summary(event: Event) -> Notice {
    let mut n = full(event);
    n.count = 12;
    n.title = format!(
        "12 more delete-pod {} in shop in the last 1m",
        event.as_str()
    );
    n.examples = (1..=5).map(|i| format!("Pod shop/api-{i}")).collect();
    n
}

/// `HOSTILE` (with line breaks, control characters, bidi overrides, wide
/// characters and emoji) repeated to `chars` characters.
fn hostile_text(chars: usize) -> String {
    let unit = format!("{HOSTILE}\r\n\u{1b}[31m\u{202e}界🚨\"\\ ");
    unit.chars().cycle().take(chars).collect()
}

/// A link that passes core's check, as long as core allows, with what
/// Markdown and Slack would have to escape.
fn long_link(tail: &str) -> String {
    let mut u = format!("https://evil.example/({tail})?a=1&b=*_~");
    while u.len() < 2040 {
        u.push_str("&x=(1)");
    }
    u.truncate(2048);
    assert!(receiver_core::text::link(&u).is_ok(), "{u}");
    u
}

/// Every text hostile and longer than core would let it be (the formats
/// bound them again), the most evidence and examples, four long links.
fn hostile(event: Event) -> Notice {
    Notice {
        event,
        severity: Severity::Critical,
        at: at(),
        cluster: Some(hostile_text(400)),
        namespace: Some(hostile_text(400)),
        kind: Some(hostile_text(400)),
        name: Some(hostile_text(400)),
        target: Some(hostile_text(400)),
        remediation: Some(RemediationKind::BumpMemory),
        route: Some(hostile_text(400)),
        source: SourceKind::Alert,
        signal: hostile_text(400),
        result: hostile_text(400),
        reason: Some(RefusalReason::BacklogFull),
        title: hostile_text(5000),
        message: hostile_text(5000),
        evidence: (0..30)
            .map(|i| (format!("{i:02}{}", hostile_text(400)), hostile_text(400)))
            .collect(),
        links: Links {
            pull_request: Some(long_link("pr")),
            runbook: Some(long_link("runbook")),
            source: Some(long_link("source")),
            record: Some(long_link("record")),
        },
        record: Some(hostile_text(400)),
        key: hostile_text(1000),
        count: u32::MAX,
        examples: (0..20).map(|_| hostile_text(400)).collect(),
    }
}

/// Every kind of notice, named.
fn notices() -> Vec<(String, Notice)> {
    let mut out = Vec::new();
    for event in Event::ALL {
        out.push((format!("full {event:?}"), full(event)));
        out.push((format!("bare {event:?}"), bare(event)));
        out.push((format!("summary {event:?}"), summary(event)));
        out.push((format!("hostile {event:?}"), hostile(event)));
    }
    for severity in [
        Severity::Info,
        Severity::Warning,
        Severity::High,
        Severity::Critical,
    ] {
        let mut n = full(Event::Failed);
        n.severity = severity;
        out.push((format!("full Failed {severity:?}"), n));
    }
    let mut refused = full(Event::Refused);
    refused.reason = Some(RefusalReason::GlobalBudget);
    refused.result = "refused".into();
    out.push(("refused for a budget".into(), refused));
    let mut one_link = bare(Event::PullRequest);
    one_link.links.pull_request = Some("https://github.example/o/r/pull/1".into());
    out.push(("bare with a pull request".into(), one_link));
    let mut bad_links = full(Event::Acted);
    bad_links.links = Links {
        pull_request: Some("javascript:alert(1)".into()),
        runbook: Some("https://user:pw@evil.example/".into()),
        source: Some("https://evil.example/a b".into()),
        record: Some("data:text/html,<b>x</b>".into()),
    };
    out.push(("links core would refuse".into(), bad_links));
    out
}

#[test]
fn slack_payloads_follow_block_kit() {
    let s = schemas();
    for (what, n) in notices() {
        let v = format::slack(&n);
        valid("slack", &s.slack, &v, &what);
    }
}

#[test]
fn teams_payloads_are_workflow_messages_with_an_adaptive_card() {
    let s = schemas();
    for (what, n) in notices() {
        let v = format::teams(&n);
        valid("teams", &s.teams, &v, &what);
        let bytes = serde_json::to_vec(&v).unwrap().len();
        assert!(bytes <= TEAMS_MAX_BYTES, "teams for {what}: {bytes} bytes");
        assert!(
            !serde_json::to_string(&v).unwrap().contains("\"entities\""),
            "{what}"
        );
    }
}

#[test]
fn dingtalk_payloads_are_markdown_robot_messages_that_mention_nobody() {
    let s = schemas();
    for (what, n) in notices() {
        let v = format::dingtalk(&n);
        valid("dingtalk", &s.dingtalk, &v, &what);
        assert_eq!(v["msgtype"], "markdown", "{what}");
        assert!(v.get("at").is_none(), "dingtalk for {what} mentions");
        assert!(v["markdown"]["text"].as_str().unwrap().contains("heal8s"));
        assert!(v["markdown"]["title"].as_str().unwrap().contains("heal8s"));
    }
}

#[test]
fn bark_payloads_follow_its_api_and_fit_an_apns_payload() {
    let s = schemas();
    for (what, n) in notices() {
        let v = format::bark(&n);
        valid("bark", &s.bark, &v, &what);
        let bytes = serde_json::to_vec(&v).unwrap().len();
        assert!(bytes <= BARK_MAX_BYTES, "bark for {what}: {bytes} bytes");
    }
}

#[test]
fn pagerduty_payloads_are_events_api_v2_events() {
    let s = schemas();
    for (what, n) in notices() {
        let v = format::pagerduty(&n, ROUTING_KEY);
        valid("pagerduty", &s.pagerduty, &v, &what);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        if n.event == Event::Recovered {
            assert_eq!(v["event_action"], "resolve", "{what}");
            assert_eq!(keys.len(), 3, "{what}: {keys:?}");
        } else {
            assert_eq!(v["event_action"], "trigger", "{what}");
        }
        assert_eq!(v["routing_key"], ROUTING_KEY);
    }
}

#[test]
fn a_trigger_and_its_resolve_share_the_dedup_key() {
    for n in [
        full(Event::Failed),
        bare(Event::Failed),
        hostile(Event::Failed),
    ] {
        let mut r = n.clone();
        r.event = Event::Recovered;
        let t = format::pagerduty(&n, ROUTING_KEY);
        let r = format::pagerduty(&r, ROUTING_KEY);
        assert_eq!(t["dedup_key"], r["dedup_key"]);
    }
}

#[test]
fn the_webhook_and_the_mail_carry_every_notice() {
    for (what, n) in notices() {
        let v = format::webhook(&n);
        assert_eq!(v["version"], "1", "{what}");
        let back: Notice = serde_json::from_value(v["notice"].clone()).unwrap();
        assert_eq!(back, n, "{what}");
        let (subject, body) = format::email(&n);
        assert!(subject.starts_with("[heal8s]["), "{what}: {subject}");
        assert!(subject.chars().count() <= 200, "{what}");
        assert!(
            !subject.chars().any(receiver_core::text::hazardous),
            "{what}: {subject:?}"
        );
        assert!(body.starts_with("What: "), "{what}");
        for line in body.lines() {
            assert!(
                !line.chars().any(receiver_core::text::hazardous),
                "{what}: {line:?}"
            );
        }
    }
}

/// The schemas are strict where the services are: each refuses a payload
/// its service would.
#[test]
fn the_schemas_refuse_what_the_services_refuse() {
    let s = schemas();
    let good = format::slack(&full(Event::Failed));
    valid("slack", &s.slack, &good, "full");
    let mut long_header = good.clone();
    long_header["blocks"][0]["text"]["text"] = json!("h".repeat(151));
    invalid("slack", &s.slack, &long_header);
    let mut unknown_block = good.clone();
    unknown_block["blocks"][0]["type"] = json!("banner");
    invalid("slack", &s.slack, &unknown_block);
    let mut mrkdwn_header = good.clone();
    mrkdwn_header["blocks"][0]["text"]["type"] = json!("mrkdwn");
    invalid("slack", &s.slack, &mrkdwn_header);
    let mut eleven_fields = good.clone();
    eleven_fields["blocks"][1]["fields"] =
        json!(vec![json!({"type": "plain_text", "text": "x"}); 11]);
    invalid("slack", &s.slack, &eleven_fields);
    let mut long_section = good.clone();
    long_section["blocks"][2]["text"]["text"] = json!("s".repeat(3001));
    invalid("slack", &s.slack, &long_section);
    let mut empty_text = good.clone();
    empty_text["blocks"][2]["text"]["text"] = json!("");
    invalid("slack", &s.slack, &empty_text);
    let mut too_many = good.clone();
    too_many["blocks"] = json!(vec![json!({"type": "divider"}); 51]);
    invalid("slack", &s.slack, &too_many);

    let good = format::teams(&full(Event::Failed));
    valid("teams", &s.teams, &good, "full");
    let mut wrong_type = good.clone();
    wrong_type["attachments"][0]["contentType"] =
        json!("application/vnd.microsoft.teams.card.o365connector");
    invalid("teams", &s.teams, &wrong_type);
    let mut bad_weight = good.clone();
    bad_weight["attachments"][0]["content"]["body"][0]["inlines"][0]["weight"] = json!("Heavy");
    invalid("teams", &s.teams, &bad_weight);
    let mut no_url = good.clone();
    no_url["attachments"][0]["content"]["actions"][0]
        .as_object_mut()
        .unwrap()
        .remove("url");
    invalid("teams", &s.teams, &no_url);

    let good = format::dingtalk(&full(Event::Failed));
    valid("dingtalk", &s.dingtalk, &good, "full");
    invalid(
        "dingtalk",
        &s.dingtalk,
        &json!({"msgtype": "markdown", "text": {"content": "x"}}),
    );
    invalid(
        "dingtalk",
        &s.dingtalk,
        &json!({"msgtype": "markdown", "markdown": {"text": "x"}}),
    );
    invalid(
        "dingtalk",
        &s.dingtalk,
        &json!({"msgtype": "html", "markdown": {"title": "t", "text": "x"}}),
    );

    let good = format::bark(&full(Event::Failed));
    valid("bark", &s.bark, &good, "full");
    let mut loud = good.clone();
    loud["level"] = json!("urgent");
    invalid("bark", &s.bark, &loud);
    let mut archive = good.clone();
    archive["isArchive"] = json!(true);
    invalid("bark", &s.bark, &archive);
    let mut typo = good.clone();
    typo["grop"] = json!("heal8s");
    invalid("bark", &s.bark, &typo);

    let good = format::pagerduty(&full(Event::Failed), ROUTING_KEY);
    valid("pagerduty", &s.pagerduty, &good, "full");
    let mut high = good.clone();
    high["payload"]["severity"] = json!("high");
    invalid("pagerduty", &s.pagerduty, &high);
    let mut action = good.clone();
    action["event_action"] = json!("escalate");
    invalid("pagerduty", &s.pagerduty, &action);
    let mut extra = good.clone();
    extra["payload"]["title"] = json!("x");
    invalid("pagerduty", &s.pagerduty, &extra);
    let mut long = good.clone();
    long["payload"]["summary"] = json!("s".repeat(1025));
    invalid("pagerduty", &s.pagerduty, &long);
    let mut key = good.clone();
    key["dedup_key"] = json!("k".repeat(256));
    invalid("pagerduty", &s.pagerduty, &key);
    let mut when = good.clone();
    when["payload"]["timestamp"] = json!("yesterday");
    invalid("pagerduty", &s.pagerduty, &when);
    invalid(
        "pagerduty",
        &s.pagerduty,
        &json!({"routing_key": ROUTING_KEY, "event_action": "resolve"}),
    );
    invalid(
        "pagerduty",
        &s.pagerduty,
        &json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "k"}),
    );
}
