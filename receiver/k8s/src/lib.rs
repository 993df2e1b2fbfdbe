//! Kubernetes IO for heal8s (watchers, executors, events, Remediation records). Nothing here yet: issue 3.
