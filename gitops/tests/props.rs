//! Properties: no input makes the patcher panic, and every edit it accepts
//! re-parses with exactly the new values and differs from the input only at
//! the edited paths, over generated manifests in the shapes real files take
//! (indentation, list style, comments, line endings, flow or block
//! resources, quoting, a missing final newline).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gitops::arith::{BumpRule, Requests};
use gitops::patch::{Edit, Target, patch};
use gitops::yaml::{self, Seg, Tree, Value};
use proptest::prelude::*;

fn deploy() -> Target {
    Target::Manifest {
        kind: "Deployment".into(),
        name: "web".into(),
        namespace: None,
        container: Some("app".into()),
    }
}

fn edits() -> Vec<Edit> {
    vec![
        Edit::Replicas(7),
        Edit::Memory("3Gi".into()),
        Edit::Image("registry.example/app:2.0".into()),
        Edit::ScaleUp {
            percent: 50,
            cap: 100,
        },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "[a-z:{}\\[\\],&*!|>'\"#<~ 0-9.\\-\\n\\t\\r]{0,300}") {
        for edit in edits() {
            let _ = patch(&text, &deploy(), &edit);
            let _ = patch(&text, &Target::HelmValues { path: vec!["a".into()] }, &edit);
        }
        let _ = Tree::parse(&text).and_then(|t| t.values());
    }

    #[test]
    fn prefixed_manifests_never_panic(junk in "[a-z:{}\\[\\],&*!|>'\"#<~ 0-9.\\-\\n\\t]{0,80}", cut in 0usize..400) {
        // a real manifest, cut anywhere, with junk spliced in
        let text = manifest(&Shape::default());
        let cut = (0..=cut.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let mangled = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
        for edit in edits() {
            let _ = patch(&mangled, &deploy(), &edit);
        }
    }

    #[test]
    fn accepted_edits_reparse_with_the_new_values(shape in shapes(), which in 0usize..4) {
        let text = manifest(&shape);
        let edit = &edits()[which];
        let out = match patch(&text, &deploy(), edit) {
            Ok(p) => p.text,
            Err(e) => panic!("refused {edit:?}: {e}\n{text}"),
        };
        let tree = Tree::parse(&out).unwrap();
        let values = tree.values().unwrap();
        prop_assert_eq!(values.len(), 2);
        let doc = &values[1];
        let container = [Seg::key("spec"), Seg::key("template"), Seg::key("spec"), Seg::key("containers"), Seg::Index(shape.sidecar as usize)];
        let at = |rest: &[&str]| {
            let mut p = container.to_vec();
            p.extend(rest.iter().map(|k| Seg::key(k)));
            doc.at(&p).cloned()
        };
        match edit {
            Edit::Replicas(n) => prop_assert_eq!(doc.at(&[Seg::key("spec"), Seg::key("replicas")]).cloned(), Some(Value::Int(i128::from(*n)))),
            Edit::Memory(q) => {
                prop_assert_eq!(at(&["resources", "limits", "memory"]), Some(Value::Str(q.clone())));
                prop_assert_eq!(at(&["resources", "requests", "memory"]), Some(Value::Str(q.clone())));
                prop_assert_eq!(at(&["resources", "limits", "cpu"]), shape.cpu.then(|| Value::Str("100m".into())));
            }
            Edit::Image(i) => prop_assert_eq!(at(&["image"]), Some(Value::Str(i.clone()))),
            _ => {}
        }
        // the first document and the line endings are untouched
        prop_assert_eq!(&values[0], &Tree::parse(&text).unwrap().values().unwrap()[0]);
        prop_assert_eq!(out.ends_with('\n'), text.ends_with('\n'));
        if shape.crlf {
            prop_assert!(!out.replace("\r\n", "").contains('\n'));
        }
        // every original line that is not a changed value is still there, in order
        let changed = ["replicas:", "memory:", "image:", "resources:"];
        let kept: Vec<&str> = text.lines().filter(|l| !changed.iter().any(|c| l.contains(c)) && l.trim() != "app:1").collect();
        let mut rest = out.lines();
        for line in kept {
            prop_assert!(rest.any(|l| l == line), "line {:?} lost or moved in\n{}", line, out);
        }
    }
}

/// A changed field's shown path (`spec.template.spec.containers.1.image`)
/// as segments, read against `doc`: a number indexes only where there is a list.
fn segs(doc: &Value, shown: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut at = Some(doc);
    for part in shown.split('.') {
        let seg = match (at, part.parse::<usize>()) {
            (Some(Value::Seq(_)), Ok(i)) => Seg::Index(i),
            _ => Seg::key(part),
        };
        at = at.and_then(|v| v.at(std::slice::from_ref(&seg)));
        out.push(seg);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepted_edits_change_nothing_but_the_edited_paths(shape in shapes(), which in 0usize..5) {
        let text = manifest(&shape);
        let bump = Edit::BumpMemory(BumpRule {
            factor: 1.5,
            step: 128 << 20,
            max: 64 << 30,
            default: 512 << 20,
            requests: Requests::Scale,
        });
        let edit = edits().into_iter().chain([bump]).nth(which).unwrap();
        let patched = match patch(&text, &deploy(), &edit) {
            Ok(p) => p,
            Err(e) => panic!("refused {edit:?}: {e}\n{text}"),
        };
        // the fields the patch reports are the ones this edit is about
        let container = format!("spec.template.spec.containers.{}", usize::from(shape.sidecar));
        let allowed: Vec<String> = match &edit {
            Edit::Replicas(_) | Edit::ScaleUp { .. } => vec!["spec.replicas".to_string()],
            Edit::Memory(_) | Edit::BumpMemory(_) => ["limits", "requests"]
                .iter()
                .map(|r| format!("{container}.resources.{r}.memory"))
                .collect(),
            Edit::Image(_) => vec![format!("{container}.image")],
        };
        prop_assert!(!patched.changes.is_empty());
        for c in &patched.changes {
            prop_assert!(allowed.contains(&c.path), "{} changed for {:?}", c.path, edit);
        }
        // the input with just those fields set is what the output means
        let values = |t: &str| Tree::parse(t).unwrap().values().unwrap();
        let before = values(&text);
        let mut expected = before.clone();
        let doc = &mut expected[patched.doc];
        for c in &patched.changes {
            let new = match &edit {
                Edit::Replicas(_) | Edit::ScaleUp { .. } => Value::Int(c.after.parse().unwrap()),
                _ => Value::Str(c.after.clone()),
            };
            let path = segs(doc, &c.path);
            prop_assert!(doc.set(&path, new), "{} cannot be set", c.path);
        }
        let after = values(&patched.text);
        prop_assert_eq!(&after, &expected, "{}", patched.text);
        // and no key moved (equality above ignores key order)
        for (b, a) in before.iter().zip(&after) {
            let mut moved = Vec::new();
            yaml::order_violations(b, a, &mut Vec::new(), &mut moved);
            prop_assert!(moved.is_empty(), "keys moved under {:?}:\n{}", moved, patched.text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_parsed_document_equals_itself_whatever_key_it_repeats(
        shape in shapes(),
        (first, second) in ("[a-z]{1,4}", "[a-z]{1,4}"),
    ) {
        // a Deployment (and the Service before it) whose labels repeat the key
        let pad = " ".repeat(shape.indent.max(2));
        let text = manifest(&shape).replacen(
            "metadata:",
            &format!("metadata:\n{pad}labels: {{tier: {first}}}\n{pad}labels: {{tier: {second}}}"),
            2,
        );
        let values = Tree::parse(&text).unwrap().values().unwrap();
        prop_assert!(values[1] == values[1], "{:?}", values[1]);
        prop_assert!(patch(&text, &deploy(), &Edit::Replicas(7)).is_ok(), "{}", text);
    }
}

#[derive(Debug, Clone, Default)]
struct Shape {
    indent: usize,
    indented_list: bool,
    comments: bool,
    crlf: bool,
    final_newline: bool,
    replicas: u8,
    resources: u8,
    cpu: bool,
    quoted_image: bool,
    sidecar: bool,
    /// 0: none; 1: the image as a folded block scalar; 2: a literal `command` last.
    block: u8,
}

fn shapes() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![Just(2usize), Just(4)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u8..4,
        0u8..5,
        any::<bool>(),
        (any::<bool>(), any::<bool>(), 0u8..3),
    )
        .prop_map(
            |(
                indent,
                indented_list,
                comments,
                crlf,
                final_newline,
                replicas,
                resources,
                cpu,
                (quoted_image, sidecar, block),
            )| Shape {
                indent,
                indented_list,
                comments,
                crlf,
                final_newline,
                replicas,
                resources,
                // an empty or null resources block has no cpu
                cpu: cpu && resources >= 3,
                quoted_image,
                sidecar,
                block,
            },
        )
}

/// A Service, then a Deployment in the given shape.
fn manifest(s: &Shape) -> String {
    let i = |n: usize| " ".repeat(n * s.indent.max(2));
    let c = |text: &str| {
        if s.comments {
            format!("  # {text}")
        } else {
            String::new()
        }
    };
    let mut lines = vec![
        "apiVersion: v1".to_string(),
        "kind: Service".to_string(),
        "metadata:".to_string(),
        format!("{}name: web", i(1)),
        "---".to_string(),
        "# the web tier".to_string(),
        "apiVersion: apps/v1".to_string(),
        "kind: Deployment".to_string(),
        "metadata:".to_string(),
        format!("{}name: web{}", i(1), c("name")),
        "spec:".to_string(),
    ];
    match s.replicas {
        0 => {}
        1 => lines.push(format!("{}replicas: 2{}", i(1), c("replicas"))),
        2 => lines.push(format!("{}replicas: \"2\"", i(1))),
        _ => lines.push(format!("{}replicas: ~", i(1))),
    }
    lines.push(format!("{}template:", i(1)));
    lines.push(format!("{}spec:", i(2)));
    lines.push(format!("{}containers:", i(3)));
    let item = if s.indented_list { i(4) } else { i(3) };
    let body = format!("{item}  ");
    let container = |name: &str, lines: &mut Vec<String>| {
        lines.push(format!("{item}- name: {name}"));
        if s.comments {
            lines.push(format!("{body}# about {name}"));
        }
        let image = if s.quoted_image { "\"app:1\"" } else { "app:1" };
        match s.resources {
            0 => {}
            1 => lines.push(format!("{body}resources: {{}}")),
            2 => lines.push(format!("{body}resources:")),
            3 if s.cpu => lines.push(format!("{body}resources: {{limits: {{cpu: 100m}}}}")),
            3 => lines.push(format!("{body}resources: {{limits: {{memory: 1Gi}}}}")),
            _ => {
                lines.push(format!("{body}resources:"));
                lines.push(format!(
                    "{body}{}limits:{}",
                    " ".repeat(s.indent),
                    c("limits")
                ));
                if s.cpu {
                    lines.push(format!("{body}{}cpu: 100m", " ".repeat(2 * s.indent)));
                } else {
                    lines.push(format!("{body}{}memory: 1Gi", " ".repeat(2 * s.indent)));
                }
            }
        }
        if s.block == 1 {
            lines.push(format!("{body}image: >-{}", c("image")));
            lines.push(format!("{body}  {}", image.trim_matches('"')));
        } else {
            lines.push(format!("{body}image: {image}{}", c("image")));
        }
        if s.block == 2 {
            lines.push(format!("{body}command: |"));
            lines.push(format!("{body}  run --fast"));
            lines.push(format!("{body}  # part of the script"));
            lines.push(String::new());
        }
    };
    if s.sidecar {
        container("proxy", &mut lines);
    }
    container("app", &mut lines);
    let nl = if s.crlf { "\r\n" } else { "\n" };
    let mut text = lines.join(nl);
    if s.final_newline {
        text.push_str(nl);
    }
    text
}
