//! Incoming alerts: Alertmanager and Grafana webhook payloads (their documented JSON:
//! `alerts[].status/labels/annotations/startsAt/endsAt`) read into timeline events, and the
//! board's alert token, which makes the webhook URL a capability.
//!
//! The token is derived from the SHA-256 of the board's facilitator key, which is all the server
//! keeps of it, so it needs no storage; the facilitator's browser, which holds the key, derives
//! the same token to show the URL. Whoever has the URL can add alerts to the timeline, nothing
//! else.

use sha2::{Digest, Sha256};

use crate::incident::parse_time;
use crate::timeline::{Event, MAX_EVENT_CHARS, MAX_SOURCE_CHARS};

/// The most alerts one payload may carry.
pub const MAX_ALERTS: usize = 100;
/// The largest payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The alert token of a board whose facilitator key hashes to `key_hash` (SHA-256).
pub fn token(key_hash: &[u8; 32]) -> String {
    let digest = Sha256::new().chain_update(b"hindsight-alert-webhook").chain_update(key_hash).finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The alert token from the facilitator key itself (in the facilitator's browser).
pub fn token_of_key(key: &str) -> String {
    token(&Sha256::digest(key.as_bytes()).into())
}

/// Reads a webhook payload into timeline events: one per alert when it fired, and one more when
/// it resolved. Ids come from the alert's identity and times, so a notification sent again
/// (Alertmanager repeats them) adds nothing. An error says what is wrong with the payload.
pub fn read_payload(body: &[u8]) -> Result<Vec<Event>, String> {
    if body.len() > MAX_PAYLOAD_BYTES {
        return Err(format!("the payload has {} bytes; at most {MAX_PAYLOAD_BYTES}", body.len()));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let alerts = value
        .get("alerts")
        .and_then(serde_json::Value::as_array)
        .ok_or("the payload has no `alerts` list (Alertmanager and Grafana webhooks send one)")?;
    if alerts.len() > MAX_ALERTS {
        return Err(format!("the payload has {} alerts; at most {MAX_ALERTS}", alerts.len()));
    }
    let source = if value.get("orgId").is_some() || value.get("state").is_some() { "grafana" } else { "alertmanager" };
    let mut events = Vec::new();
    for (i, alert) in alerts.iter().enumerate() {
        let text_of = |object: &str, key: &str| {
            alert.get(object).and_then(|o| o.get(key)).and_then(serde_json::Value::as_str).unwrap_or_default().trim()
        };
        let name = text_of("labels", "alertname");
        let summary = [text_of("annotations", "summary"), text_of("annotations", "description"), name]
            .into_iter()
            .find(|s| !s.is_empty())
            .ok_or(format!("alert {i} has no alertname, summary or description"))?;
        let time =
            |key: &str| alert.get(key).and_then(serde_json::Value::as_str).and_then(|t| parse_time(t).map(|p| (t, p)));
        let (started, _) = time("startsAt").ok_or(format!("alert {i} has no readable `startsAt` (RFC 3339)"))?;
        let fingerprint = alert.get("fingerprint").and_then(serde_json::Value::as_str).unwrap_or(name);
        let event = |at: &str, what: &str| {
            let id: String = Sha256::new()
                .chain_update(fingerprint.as_bytes())
                .chain_update(at.as_bytes())
                .chain_update(what.as_bytes())
                .finalize()
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect();
            let text = format!("{what}{summary}");
            Event {
                id: format!("alert-{id}"),
                at: at.to_owned(),
                text: text.chars().take(MAX_EVENT_CHARS).collect(),
                kind: "alert".into(),
                source: format!("{source}{}", if name.is_empty() { String::new() } else { format!(": {name}") })
                    .chars()
                    .take(MAX_SOURCE_CHARS)
                    .collect(),
                starred: false,
            }
        };
        events.push(event(started, ""));
        let status = alert.get("status").and_then(serde_json::Value::as_str).unwrap_or_default();
        // Alertmanager says "not ended" with the zero time, year 1.
        if let Some((ended, _)) = time("endsAt").filter(|(t, _)| status == "resolved" && !t.starts_with("0001-")) {
            events.push(event(ended, "Resolved: "));
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alertmanager's documented webhook payload (version 4), one firing and one resolved alert.
    const ALERTMANAGER: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
      "status": "firing", "receiver": "hindsight",
      "groupLabels": {"alertname": "HighErrorRate"}, "commonLabels": {"alertname": "HighErrorRate"},
      "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout"},
         "annotations": {"summary": "Checkout error rate above 5%"},
         "startsAt": "2026-11-30T13:09:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus/graph", "fingerprint": "c4f5b1e0a1b2c3d4"},
        {"status": "resolved", "labels": {"alertname": "LatencyP99"},
         "annotations": {}, "startsAt": "2026-11-30T13:05:00Z", "endsAt": "2026-11-30T14:40:00Z",
         "fingerprint": "0a0b0c0d0e0f0102"}
      ]
    }"#;

    /// Grafana's documented webhook payload (unified alerting).
    const GRAFANA: &str = r#"{
      "receiver": "hindsight", "status": "firing", "orgId": 1,
      "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1"},
        "annotations": {"description": "Disk 95% full on db-1"},
        "startsAt": "2026-11-30T14:12:00+01:00", "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "57c6d9296de2ad39", "values": {"A": 95}}],
      "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://grafana", "version": "1", "groupKey": "{}", "truncatedAlerts": 0,
      "title": "[FIRING:1] DiskFull", "state": "alerting", "message": "..."
    }"#;

    #[test]
    fn documented_payloads_become_timeline_events() {
        let events = read_payload(ALERTMANAGER.as_bytes()).expect("alertmanager");
        let seen: Vec<(&str, &str, &str)> =
            events.iter().map(|e| (e.at.as_str(), e.text.as_str(), e.source.as_str())).collect();
        assert_eq!(
            seen,
            [
                ("2026-11-30T13:09:00.123456789Z", "Checkout error rate above 5%", "alertmanager: HighErrorRate"),
                ("2026-11-30T13:05:00Z", "LatencyP99", "alertmanager: LatencyP99"),
                ("2026-11-30T14:40:00Z", "Resolved: LatencyP99", "alertmanager: LatencyP99"),
            ]
        );
        assert!(events.iter().all(|e| e.kind == "alert" && e.id.starts_with("alert-")));
        assert_eq!(read_payload(ALERTMANAGER.as_bytes()).unwrap(), events, "the same notification, the same events");
        let grafana = read_payload(GRAFANA.as_bytes()).expect("grafana");
        assert_eq!(
            (grafana[0].text.as_str(), grafana[0].source.as_str()),
            ("Disk 95% full on db-1", "grafana: DiskFull")
        );
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        for (body, says) in [
            ("not json", "not JSON"),
            ("{}", "no `alerts`"),
            (r#"{"alerts":[{"labels":{"alertname":"X"}}]}"#, "startsAt"),
            (r#"{"alerts":[{"startsAt":"2026-11-30T13:00:00Z"}]}"#, "no alertname"),
        ] {
            let error = read_payload(body.as_bytes()).expect_err(body);
            assert!(error.contains(says), "{body}: {error}");
        }
        let many = format!(
            r#"{{"alerts":[{}]}}"#,
            vec![r#"{"labels":{"alertname":"X"},"startsAt":"2026-11-30T13:00:00Z"}"#; 101].join(",")
        );
        assert!(read_payload(many.as_bytes()).expect_err("too many").contains("at most 100"));
        assert!(read_payload(&vec![b' '; MAX_PAYLOAD_BYTES + 1]).expect_err("too big").contains("bytes"));
    }

    #[test]
    fn the_token_is_the_same_from_the_key_and_from_its_hash() {
        let key = "facilitator-key";
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        assert_eq!(token(&hash), token_of_key(key));
        assert_eq!(token(&hash).len(), 32);
        assert_ne!(token_of_key("another key"), token_of_key(key));
    }
}
