//! Reading a receiver's secrets: from the environment or a file, when a
//! message is sent (so a rotated Kubernetes Secret is picked up without a
//! restart), and at start-up to fail fast. Errors name the variable or the
//! file, never the value.

use receiver_core::notify::Secret;

/// Largest secret file read (a URL or a key; anything bigger is a mistake).
pub const MAX_SECRET_BYTES: u64 = 16 << 10;

/// The secret's value, trimmed.
pub fn read(s: &Secret) -> Result<String, String> {
    let v = match s {
        Secret::Env(name) => std::env::var(name)
            .map_err(|_| format!("environment variable {name} is not set (or not UTF-8)"))?,
        Secret::File(path) => {
            let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {}", e.kind()))?;
            if meta.len() > MAX_SECRET_BYTES {
                return Err(format!(
                    "{path}: larger than {MAX_SECRET_BYTES} bytes; is it the right file?"
                ));
            }
            std::fs::read_to_string(path).map_err(|e| format!("{path}: {}", e.kind()))?
        }
    };
    let v = v.trim();
    if v.is_empty() {
        return Err(match s {
            Secret::Env(name) => format!("environment variable {name} is empty"),
            Secret::File(path) => format!("{path} is empty"),
        });
    }
    Ok(v.to_string())
}

/// Every secret of every receiver, read once: the problems, each naming the
/// receiver and field (for `serve` and `check-config` to refuse to start).
pub fn check(cfg: &receiver_core::notify::Notifications) -> Vec<String> {
    use receiver_core::notify::config::Channel;
    let mut out = Vec::new();
    for r in &cfg.receivers {
        let mut need = |field: &str, s: &Secret| {
            if let Err(e) = read(s) {
                out.push(format!("notifications receiver {:?} {field}: {e}", r.name));
            }
        };
        match r.channel() {
            Some(Channel::Slack(u) | Channel::Teams(u) | Channel::Bark(u)) => need("url", &u.url),
            Some(Channel::DingTalk(d)) => {
                need("url", &d.url);
                if let Some(s) = &d.secret {
                    need("secret", s);
                }
            }
            Some(Channel::PagerDuty(p)) => need("routingKey", &p.routing_key),
            Some(Channel::Email(e)) => {
                if let Some(p) = &e.password {
                    need("password", p);
                }
            }
            Some(Channel::Webhook(w)) => {
                need("url", &w.url);
                if let Some(t) = &w.bearer_token {
                    need("bearerToken", t);
                }
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_where_the_secret_was_looked_for_never_its_value() {
        let dir = std::env::temp_dir().join(format!("heal8s-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("url");
        std::fs::write(&f, "  https://hooks.example/SEKRIT\n").unwrap();
        let path = f.to_string_lossy().to_string();
        assert_eq!(
            read(&Secret::File(path.clone())).unwrap(),
            "https://hooks.example/SEKRIT"
        );
        std::fs::write(&f, "\n").unwrap();
        let e = read(&Secret::File(path.clone())).unwrap_err();
        assert!(e.contains("is empty") && e.contains(&path), "{e}");
        let e = read(&Secret::Env("HEAL8S_TEST_SURELY_UNSET_VAR".into())).unwrap_err();
        assert!(e.contains("HEAL8S_TEST_SURELY_UNSET_VAR"), "{e}");
        let e = read(&Secret::File(dir.join("missing").to_string_lossy().into())).unwrap_err();
        assert!(e.contains("not found") || e.contains("NotFound"), "{e}");
        std::fs::write(&f, "x".repeat(MAX_SECRET_BYTES as usize + 1)).unwrap();
        assert!(
            read(&Secret::File(path))
                .unwrap_err()
                .contains("larger than")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
