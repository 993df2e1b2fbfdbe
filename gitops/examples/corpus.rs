//! Apply every edit case of a manifest-edit corpus (`cases-*.jsonl`, see
//! `../shared/corpus/README.md`) with heal8s's patcher and write each edited
//! file to `OUTDIR/<id>.yaml` for `score.py`. Refusals are listed on stderr.
//!
//! cargo run --release -p gitops --example corpus -- CASES.jsonl OUTDIR

use std::io::BufRead;
use std::path::Path;

use gitops::patch::{self, Edit, Target};

/// `registry/repository` of the image mapping at `values_path` of a values
/// file, under whichever key names the repository there.
fn values_repository(text: &str, values_path: &serde_json::Value) -> Option<String> {
    let values: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    let mut node = &values;
    for seg in values_path.as_array()? {
        node = match seg {
            serde_json::Value::String(k) => node.get(k)?,
            serde_json::Value::Number(i) => node.get(usize::try_from(i.as_u64()?).ok()?)?,
            _ => return None,
        };
    }
    let image = node.get("image")?;
    let repository = patch::REPOSITORY_KEYS
        .iter()
        .find_map(|k| image.get(*k)?.as_str())?;
    Some(match image.get("registry").and_then(|r| r.as_str()) {
        Some(r) if !r.is_empty() => format!("{r}/{repository}"),
        _ => repository.to_string(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(cases), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: corpus CASES.jsonl OUTDIR".into());
    };
    let base = Path::new(&cases).parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(&out)?;
    let (mut done, mut refused) = (0, 0);
    for line in std::io::BufReader::new(std::fs::File::open(&cases)?).lines() {
        let case: serde_json::Value = serde_json::from_str(&line?)?;
        let s = |k: &str| case[k].as_str().map(str::to_string);
        let id = s("id").ok_or("case without id")?;
        let text = std::fs::read_to_string(base.join(s("file").ok_or("case without file")?))?;
        let edit = match s("edit").as_deref() {
            Some("memory") => Edit::Memory(s("new_value").ok_or("memory without value")?),
            // a case whose repository the corpus could not read (`:2.14.0`:
            // a values key other than `repository`) asks for a new tag on the
            // same repository: the full reference names the one in the values
            Some("image") => Edit::Image(s("new_value").unwrap_or_else(|| {
                let old = s("old_value").unwrap_or_default();
                let name = old.rsplit_once(':').map_or(old.as_str(), |(n, _)| n);
                let name = if name.is_empty() {
                    values_repository(&text, &case["values_path"]).unwrap_or_default()
                } else {
                    name.to_string()
                };
                format!("{name}:rollback-1")
            })),
            Some("replicas") => Edit::Replicas(u32::try_from(
                case["new_value"].as_u64().ok_or("replicas without value")?,
            )?),
            other => return Err(format!("{id}: unknown edit {other:?}").into()),
        };
        let target = if s("target").as_deref() == Some("helm-values") {
            Target::HelmValues {
                path: case["values_path"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        } else {
            Target::Manifest {
                kind: s("kind").ok_or("case without kind")?,
                name: s("name").ok_or("case without name")?,
                namespace: s("namespace"),
                container: s("container"),
            }
        };
        match patch::patch(&text, &target, &edit) {
            Ok(p) => {
                std::fs::write(Path::new(&out).join(format!("{id}.yaml")), p.text)?;
                done += 1;
            }
            Err(e) => {
                eprintln!("{id}: {e}");
                refused += 1;
            }
        }
    }
    eprintln!("{done} edited, {refused} refused");
    Ok(())
}
