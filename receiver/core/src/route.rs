//! Routing: which routes of the policy a signal takes. A pure function of labels.
//!
//! First match wins; a matching route with `continue: true` lets evaluation go on.

use crate::policy::{Policy, Route};
use crate::signal::Signal;

/// The routes `signal` takes, in policy order. Empty when nothing matches.
pub fn route<'p>(policy: &'p Policy, signal: &Signal) -> Vec<&'p Route> {
    let mut out = Vec::new();
    for r in &policy.routes {
        if r.matchers.iter().all(|m| m.matches(&signal.labels)) {
            out.push(r);
            if !r.continue_matching {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::signal;

    fn policy(yaml: &str) -> Policy {
        Policy::from_yaml(yaml).unwrap()
    }

    fn names<'a>(rs: &[&'a Route]) -> Vec<&'a str> {
        rs.iter().map(|r| r.name.as_str()).collect()
    }

    const P: &str = r#"
routes:
  - name: shop-only
    matchers: ['alertname="KubePodCrashLooping"', 'namespace="shop"']
    remediation: delete-pod
    continue: true
  - name: crashloop
    matchers: ['alertname=~"KubePod.*"']
    remediation: evict-pod
  - name: never-reached-for-crashloop
    matchers: ['alertname="KubePodCrashLooping"']
    remediation: notify-only
  - name: catch-all
    remediation: notify-only
"#;

    #[test]
    fn first_match_wins() {
        let p = policy(P);
        let s = signal(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "web"),
            ("pod", "p"),
        ]);
        assert_eq!(names(&route(&p, &s)), ["crashloop"]);
    }

    #[test]
    fn continue_lets_later_routes_match() {
        let p = policy(P);
        let s = signal(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", "p"),
        ]);
        assert_eq!(names(&route(&p, &s)), ["shop-only", "crashloop"]);
    }

    #[test]
    fn route_without_matchers_catches_everything_else() {
        let p = policy(P);
        let s = signal(&[("alertname", "Watchdog")]);
        assert_eq!(names(&route(&p, &s)), ["catch-all"]);
    }

    #[test]
    fn nothing_matches_is_empty() {
        let p = policy("routes: [{matchers: ['alertname=\"A\"'], remediation: notify-only}]");
        assert!(route(&p, &signal(&[("alertname", "B")])).is_empty());
    }

    #[test]
    fn negative_matchers_exclude() {
        let p = policy(
            "routes: [{matchers: ['alertname=\"A\"', 'severity!=\"info\"'], remediation: notify-only}]",
        );
        assert_eq!(
            route(&p, &signal(&[("alertname", "A"), ("severity", "info")])).len(),
            0
        );
        assert_eq!(
            route(&p, &signal(&[("alertname", "A"), ("severity", "critical")])).len(),
            1
        );
    }
}
