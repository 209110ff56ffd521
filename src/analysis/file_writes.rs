//! Calls that write a file or a directory (`df.to_csv(...)`, `joblib.dump(m, ...)`,
//! `open(..., "w")`, `model.save(...)`), found statically. A file one step writes and a
//! later step reads orders the two (the notebook ran them in that order) and, on
//! Kubeflow, where every step has a file system of its own, travels between them.

use ruff_python_ast::{Expr, ExprCall};

use super::file_reads::{calls_in_cells, dotted, literal};
use super::{CellSource, Location};

/// One call that writes a file or directory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileWriteCall {
    pub at: Location,
    /// The function called, as written (`df.to_csv`).
    pub call: String,
    /// The path when it is a string literal.
    pub path: Option<String>,
}

/// (last name of the callee, index of the positional argument holding the path,
/// keyword names that may hold it).
const WRITERS: &[(&str, usize, &[&str])] = &[
    ("copy", 1, &["dst"]),
    ("copy2", 1, &["dst"]),
    ("copyfile", 1, &["dst"]),
    ("copytree", 1, &["dst"]),
    ("dump", 1, &["filename"]),
    ("export_graphviz", 1, &["out_file"]),
    ("imsave", 0, &["fname"]),
    ("imwrite", 0, &["filename"]),
    ("move", 1, &["dst"]),
    ("save", 0, &["file", "filepath", "path", "fname"]),
    ("save_model", 0, &["fname", "filename", "path"]),
    ("save_pretrained", 0, &["save_directory"]),
    ("save_weights", 0, &["filepath"]),
    ("savefig", 0, &["fname"]),
    ("savetxt", 0, &["fname"]),
    ("savez", 0, &["file"]),
    ("savez_compressed", 0, &["file"]),
    ("to_csv", 0, &["path_or_buf"]),
    ("to_excel", 0, &["excel_writer"]),
    ("to_feather", 0, &["path"]),
    ("to_hdf", 0, &["path_or_buf"]),
    ("to_json", 0, &["path_or_buf"]),
    ("to_orc", 0, &["path"]),
    ("to_parquet", 0, &["path"]),
    ("to_pickle", 0, &["path"]),
    ("to_stata", 0, &["path"]),
    ("write", 0, &[]),
    ("write_bytes", 0, &[]),
    ("write_text", 0, &[]),
];

/// Every file-writing call in these cells, in order.
pub fn file_writes(cells: &[CellSource]) -> Vec<FileWriteCall> {
    // A cell naming no writer cannot call one.
    let may_name = |source: &str| {
        source.contains("open")
            || source.contains("write")
            || WRITERS.iter().any(|(name, _, _)| source.contains(name))
    };
    calls_in_cells(cells, may_name, written_path)
        .into_iter()
        .map(|(at, call, path)| FileWriteCall { at, call, path })
        .collect()
}

/// `Some(path)` when the call writes (`path` None when not a literal).
fn written_path(call: &ExprCall, name: &str, last: &str) -> Option<Option<String>> {
    let args = &call.arguments;
    let keyword = |names: &[&str]| {
        args.keywords
            .iter()
            .find(|k| k.arg.as_ref().is_some_and(|a| names.contains(&a.as_str())))
            .map(|k| &k.value)
    };
    match last {
        "open" => {
            let mode = args
                .args
                .get(1)
                .or_else(|| keyword(&["mode"]))
                .and_then(literal)?;
            mode.contains(['w', 'a', 'x', '+']).then(|| {
                args.args
                    .first()
                    .or_else(|| keyword(&["file"]))
                    .and_then(literal)
            })
        }
        // `Path("out.txt").write_text(...)`: the path is the receiver.
        "write_text" | "write_bytes" if matches!(&*call.func, Expr::Attribute(_)) => {
            let Expr::Attribute(a) = &*call.func else {
                return None;
            };
            match &*a.value {
                Expr::Call(path) if dotted(&path.func).is_some_and(|f| f.ends_with("Path")) => {
                    Some(path.arguments.args.first().and_then(literal))
                }
                _ => Some(None),
            }
        }
        // `f.write(...)` writes an open file, already seen as `open`.
        "write" => None,
        // `pickle.dump(obj, fh)` / `json.dump(obj, fh)` write an open file.
        "dump"
            if matches!(
                name.rsplit_once('.').map(|(m, _)| m),
                Some("json" | "pickle" | "yaml" | "marshal" | "dill" | "cloudpickle")
            ) =>
        {
            None
        }
        // `torch.save(obj, f)`: the path comes second.
        "save" if name.starts_with("torch.") => Some(
            args.args
                .get(1)
                .or_else(|| keyword(&["f"]))
                .and_then(literal),
        ),
        _ => {
            let (_, index, keywords) = WRITERS.iter().find(|(n, _, _)| *n == last)?;
            Some(
                args.args
                    .get(*index)
                    .or_else(|| keyword(keywords))
                    .and_then(literal),
            )
        }
    }
}

/// Whether a read of `read` may see what a write of `written` produced (paths as
/// written in the notebook; None: not a literal, so it may be anything).
pub fn may_meet(written: Option<&str>, read: Option<&str>) -> bool {
    let (Some(w), Some(r)) = (written, read) else {
        return true;
    };
    let clean = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_owned();
    let (w, r) = (clean(w), clean(r));
    w == r || r.starts_with(&format!("{w}/")) || w.starts_with(&format!("{r}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(src: &str) -> Vec<(u32, String, Option<String>)> {
        file_writes(&[CellSource {
            number: 2,
            source: src,
        }])
        .into_iter()
        .map(|w| (w.at.line, w.call, w.path))
        .collect()
    }

    #[test]
    fn finds_writes_with_their_paths() {
        let src = "joblib.dump(model, 'model.joblib')\ndf.to_csv(out)\nwith open('log.txt', 'w') as f:\n    f.write('x')\n\
                   torch.save(net.state_dict(), 'net.pt')\nos.makedirs('ckpt', exist_ok=True)\nPath('a.txt').write_text('hi')\n\
                   pickle.dump(m, open('m.pkl', 'wb'))\nnp.save('arr.npy', a)\nplt.savefig('fig.png')\n";
        assert_eq!(
            writes(src),
            [
                (1, "joblib.dump".into(), Some("model.joblib".into())),
                (2, "df.to_csv".into(), None),
                (3, "open".into(), Some("log.txt".into())),
                (5, "torch.save".into(), Some("net.pt".into())),
                (7, "Path().write_text".into(), Some("a.txt".into())),
                (8, "open".into(), Some("m.pkl".into())),
                (9, "np.save".into(), Some("arr.npy".into())),
                (10, "plt.savefig".into(), Some("fig.png".into())),
            ]
        );
    }

    #[test]
    fn reads_are_not_writes() {
        // A directory made empty holds nothing a later step could read.
        let src = "open('in.txt')\njson.dump(d, fh)\nx = np.load('a.npy')\nf.write('x')\nos.makedirs('d')\n";
        assert!(writes(src).is_empty(), "{:?}", writes(src));
    }

    #[test]
    fn paths_meet_when_equal_nested_or_unknown() {
        assert!(may_meet(Some("model.joblib"), Some("./model.joblib")));
        assert!(may_meet(Some("ckpt"), Some("ckpt/epoch-3.pt")));
        assert!(may_meet(None, Some("x")));
        assert!(!may_meet(Some("a.csv"), Some("b.csv")));
    }
}
