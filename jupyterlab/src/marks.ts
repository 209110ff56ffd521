/**
 * kale's problems marked on the line they belong to, in the cell's CodeMirror editor:
 * a line decoration (error or warning) with the message as its title.
 */

import { RangeSetBuilder, StateEffect, StateField } from '@codemirror/state';
import { Decoration, DecorationSet, EditorView } from '@codemirror/view';
import { CodeMirrorEditor } from '@jupyterlab/codemirror';
import { CodeEditor } from '@jupyterlab/codeeditor';

export interface ILineMark {
  /** 1-based line in the cell. */
  line: number;
  severity: 'error' | 'warning';
  message: string;
}

const setMarks = StateEffect.define<ILineMark[]>();

const marksField = StateField.define<DecorationSet>({
  create() {
    return Decoration.none;
  },
  update(value, tr) {
    value = value.map(tr.changes);
    for (const effect of tr.effects) {
      if (effect.is(setMarks)) {
        value = build(tr.state.doc, effect.value);
      }
    }
    return value;
  },
  provide: f => EditorView.decorations.from(f)
});

function build(doc: { lines: number; line(n: number): { from: number } }, marks: ILineMark[]): DecorationSet {
  const builder = new RangeSetBuilder<Decoration>();
  const sorted = [...marks]
    .filter(m => m.line >= 1 && m.line <= doc.lines)
    .sort((a, b) => a.line - b.line);
  let last = -1;
  for (const m of sorted) {
    if (m.line === last) {
      continue;
    }
    last = m.line;
    builder.add(
      doc.line(m.line).from,
      doc.line(m.line).from,
      Decoration.line({
        class: `kale-line-${m.severity}`,
        attributes: { title: m.message, 'data-kale-line': String(m.line) }
      })
    );
  }
  return builder.finish();
}

const injected = new WeakSet<EditorView>();

/** Shows `marks` in the editor (replacing the ones shown before). */
export function markLines(editor: CodeEditor.IEditor | null | undefined, marks: ILineMark[]): void {
  if (!(editor instanceof CodeMirrorEditor)) {
    return;
  }
  const view = editor.editor;
  if (!injected.has(view)) {
    if (marks.length === 0) {
      return;
    }
    editor.injectExtension(marksField);
    injected.add(view);
  }
  view.dispatch({ effects: setMarks.of(marks) });
}
