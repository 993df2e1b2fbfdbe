#!/usr/bin/env python3
"""Regenerate the response templates of the GitHub emulation from GitHub's
official OpenAPI description (@octokit/openapi, api.github.com.json, MIT).

Usage: extract.py [SPEC]   (default: the spec installed by the harness)

Each template is one example object from `components.examples[...].value`,
verbatim except that nested users and repositories are replaced by null (the
emulation fills them in) and a few optional nested objects it never serves
are dropped. Run from anywhere; writes next to this script.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "GITHUB_SPEC",
    "/work/shared/harness/github-prism/node_modules/@octokit/openapi/generated/api.github.com.json",
)

spec = json.load(open(SPEC))
examples = spec["components"]["examples"]


def example(name, index=None):
    v = examples[name]["value"]
    return v[index] if index is not None else v


USER_KEYS = ("user", "owner", "assignee", "merged_by", "closed_by", "account", "suspended_by")


def strip(v, drop=()):
    """Null nested users, repos and milestones, drop listed keys, recursively."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in drop:
                continue
            if k in USER_KEYS and isinstance(x, dict):
                out[k] = None
            elif k in ("repo", "milestone", "pinned_comment") and isinstance(x, dict):
                out[k] = None
            elif k in ("assignees", "requested_reviewers", "requested_teams"):
                out[k] = []
            else:
                out[k] = strip(x, drop)
        return out
    if isinstance(v, list):
        return [strip(x, drop) for x in v]
    return v


pr = example("pull-request")
templates = {
    "user": example("pull-request")["user"],
    "repository": strip(pr["head"]["repo"]),
    "full-repository": strip(
        example("full-repository-default-response"),
        drop=("template_repository", "parent", "source", "organization"),
    ),
    "installation": strip(example("installation")),
    "installation-token": strip(example("installation-token"), drop=("repositories",)),
    "pull-request": strip(pr),
    "pull-request-simple": strip(example("pull-request-simple-items", 0)),
    "issue": strip(example("issue"), drop=("repository",)),
    "issue-comment": strip(example("issue-comment")),
    "label": example("label-items", 0),
    "content-file": example("content-file-response-if-content-is-a-file"),
    "file-commit": example("file-commit-example-for-updating-a-file"),
    "git-commit": example("git-commit"),
    "rate-limit-overview": example("rate-limit-overview"),
}
for name, value in templates.items():
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    print(name, len(json.dumps(value)))
