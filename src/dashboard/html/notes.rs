//! The note editor of an experiment or a trial. The dashboard writes nothing else:
//! saving needs the token `kale dashboard` printed (in the address it printed, after
//! `#token=`), which the script keeps for this browser.

use crate::render::svg::xml;

pub fn editor(url: &str, note: Option<&str>, label: &str) -> String {
    format!(
        r#"<section class="card notes" id="notes"><h2>{}</h2><textarea id="note-text" rows="3" data-url="{}" readonly placeholder="No note yet.">{}</textarea><div class="note-tools"><button type="button" id="note-save" hidden>Save note</button> <span id="note-status" class="muted">To write notes, open the address <code>kale dashboard</code> printed (it ends in <code>#token=…</code>).</span></div></section>
"#,
        xml(label),
        xml(url),
        xml(note.unwrap_or_default())
    )
}
