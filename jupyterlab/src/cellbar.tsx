/**
 * The bar on top of each code cell: what the cell is to the pipeline (its step, in the
 * step's colour, or the block it continues), kale's problems on it, and, behind the
 * pencil, the editor for its Kale tags.
 */

import { Cell } from '@jupyterlab/cells';
import { editIcon } from '@jupyterlab/ui-components';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IDiagnostic, quickFix } from './diagnostics';
import type { NotebookSession } from './session';
import { IBlock, stepColor } from './structure';
import {
  CellKind,
  checkLimit,
  checkStepName,
  IAnnotation,
  KIND_LABELS,
  parseTags
} from './tags';

const KINDS: CellKind[] = [
  'none',
  'imports',
  'functions',
  'pipeline-parameters',
  'step',
  'pipeline-metrics',
  'skip'
];

export class CellBar extends ReactWidget {
  private _index = -1;
  private _block: IBlock | undefined;
  editing = false;
  /** "Pipeline step" picked, no valid name typed yet: nothing written so far. */
  pendingStep = false;

  constructor(
    readonly session: NotebookSession,
    readonly cell: Cell
  ) {
    super();
    this.addClass('kale-cellbar');
  }

  get index(): number {
    return this._index;
  }

  get block(): IBlock | undefined {
    return this._block;
  }

  setState(index: number, block: IBlock | undefined): void {
    this._index = index;
    this._block = block;
    this.update();
  }

  setEditing(on: boolean): void {
    this.editing = on;
    this.toggleClass('kale-cellbar-open', on);
    this.update();
  }

  render(): JSX.Element {
    return <Bar bar={this} />;
  }
}

function annotationOf(bar: CellBar): IAnnotation {
  return parseTags(bar.cell.model.getMetadata('tags'));
}

function Bar({ bar }: { bar: CellBar }): JSX.Element | null {
  const block = bar.block;
  if (!block) {
    return null;
  }
  const diags = bar.session.diagnosticsFor(bar.index);
  const color = stepColor(block.color);
  let label: JSX.Element;
  if (block.step) {
    label = (
      <span className="kale-chip" style={{ background: color }} data-kale-step={block.step}>
        {block.continues ? `\u21b3 ${block.step}` : block.step}
      </span>
    );
  } else if (block.kind !== 'none') {
    label = (
      <span className={`kale-chip kale-chip-special kale-chip-${block.kind}`}>
        {block.continues ? `\u21b3 ${KIND_LABELS[block.kind]}` : KIND_LABELS[block.kind]}
      </span>
    );
  } else {
    label = (
      <span className="kale-chip kale-chip-none">
        {block.dropped ? 'not in the pipeline (above the first tagged cell)' : 'untagged'}
      </span>
    );
  }
  const a = block.annotation;
  const details: string[] = [];
  if (a.kind === 'step' && !block.continues) {
    if (a.prev.length) {
      details.push(`after ${a.prev.join(', ')}`);
    }
    for (const [r, v] of a.limits) {
      details.push(r.endsWith('gpu') ? `${v} GPU${v === '1' ? '' : 's'}` : `${r} ${v}`);
    }
    if (a.image) {
      details.push(`image ${a.image}`);
    }
    if (a.cache) {
      details.push(`cache ${a.cache}`);
    }
  }
  if (block.continues && a.kind === 'none') {
    details.push('continues the cell above');
  } else if (block.continues && a.kind === 'step') {
    details.push('adds to the step defined above');
  }
  return (
    <div className="kale-cellbar-inner" data-tags={JSON.stringify(bar.cell.model.getMetadata('tags') ?? [])}>
      <div className="kale-cellbar-row">
        {label}
        <span className="kale-cellbar-details">{details.join(' · ')}</span>
        {diags.length > 0 && (
          <span className={`kale-badge kale-badge-${diags.some(d => d.severity === 'error') ? 'error' : 'warning'}`}>
            {diags.length} {diags.length === 1 ? 'problem' : 'problems'}
          </span>
        )}
        <button
          className="kale-icon-button kale-cellbar-edit"
          title={bar.editing ? 'Close the Kale tags editor' : 'Edit the Kale tags of this cell'}
          onClick={() => bar.setEditing(!bar.editing)}
        >
          <editIcon.react tag="span" />
        </button>
      </div>
      {diags.map((d, i) => (
        <Problem key={i} bar={bar} d={d} />
      ))}
      {bar.editing && <Editor bar={bar} />}
    </div>
  );
}

function Problem({ bar, d }: { bar: CellBar; d: IDiagnostic }): JSX.Element {
  const fix = quickFix(d);
  return (
    <div className={`kale-problem kale-problem-${d.severity}`} data-kale-line={d.line ?? ''}>
      <span className="kale-problem-where">
        {d.severity}
        {d.line ? `, line ${d.line}` : ''}:
      </span>{' '}
      <span className="kale-problem-message">{d.message}</span>
      {d.hint && <div className="kale-problem-hint">hint: {d.hint}</div>}
      {fix && (
        <button
          className="kale-link-button kale-quick-fix"
          onClick={() => {
            const target = bar.session.blocks()[fix.cell];
            if (target) {
              const a = { ...target.annotation, prev: [...target.annotation.prev] };
              const m = /^prev:(.+)$/.exec(fix.tag);
              if (m && !a.prev.includes(m[1])) {
                a.prev.push(m[1]);
              }
              bar.session.annotate(fix.cell, a);
            }
          }}
        >
          add {fix.tag}
        </button>
      )}
    </div>
  );
}

function Editor({ bar }: { bar: CellBar }): JSX.Element {
  const block = bar.block!;
  const a = annotationOf(bar);
  const [draft, setDraft] = React.useState(a.step);
  const [limitError, setLimitError] = React.useState<string | null>(null);
  // The name shown follows the tags when they change elsewhere (an undo, the raw editor).
  React.useEffect(() => setDraft(a.step), [a.step]);
  const write = (next: IAnnotation) => bar.session.annotate(bar.index, next);
  const check = checkStepName(draft);
  const isStep = a.kind === 'step';
  const above = block.stepsAbove.filter(s => s !== a.step);
  const gpu = a.limits.find(([r]) => r === 'nvidia.com/gpu')?.[1] ?? '';
  const limit = (resource: string) => a.limits.find(([r]) => r === resource)?.[1] ?? '';
  const setLimit = (resource: string, value: string) => {
    const problem = value ? checkLimit(resource, value) : null;
    setLimitError(problem ? `${resource}: ${problem}` : null);
    if (problem) {
      return;
    }
    const limits = a.limits.filter(([r]) => r !== resource);
    if (value) {
      limits.push([resource, value]);
    }
    write({ ...a, limits });
  };
  const firstCellOfStep = isStep && !block.continues;
  return (
    <div className="kale-editor">
      <label className="kale-field">
        <span>Cell type</span>
        <select
          className="kale-kind"
          value={a.kind}
          onChange={e => {
            const kind = e.target.value as CellKind;
            const next = { ...a, kind };
            if (kind === 'step' && !next.step) {
              next.step = check.ok ? draft : '';
            }
            if (kind === 'step' && !next.step) {
              // Not written until it has a name.
              setDraft('');
              bar.pendingStep = true;
              bar.update();
              return;
            }
            bar.pendingStep = false;
            write(next);
          }}
        >
          {KINDS.map(k => (
            <option key={k} value={k}>
              {KIND_LABELS[k]}
            </option>
          ))}
        </select>
      </label>
      {(isStep || bar.pendingStep) && (
        <>
          <label className="kale-field">
            <span>Step name</span>
            <input
              className={`kale-step-name ${check.ok ? '' : 'kale-invalid'}`}
              value={draft}
              spellCheck={false}
              placeholder="e.g. load_data"
              onChange={e => {
                const name = e.target.value;
                setDraft(name);
                const ok = checkStepName(name).ok;
                if (ok) {
                  bar.pendingStep = false;
                  bar.session.renameStep(bar.index, { ...a, kind: 'step', step: name }, a.kind === 'step' ? a.step : '');
                }
              }}
            />
          </label>
          {!check.ok && (
            <div className="kale-name-check">
              {check.message}
              {check.suggestion && (
                <>
                  {' '}
                  <button
                    className="kale-link-button kale-use-suggestion"
                    onClick={() => {
                      setDraft(check.suggestion!);
                      bar.pendingStep = false;
                      bar.session.renameStep(bar.index, { ...a, kind: 'step', step: check.suggestion! }, a.kind === 'step' ? a.step : '');
                    }}
                  >
                    use {check.suggestion}
                  </button>
                </>
              )}
            </div>
          )}
        </>
      )}
      {isStep && !firstCellOfStep && (
        <div className="kale-note">
          This cell adds to step <b>{a.step}</b>; its dependencies and resources are set on the
          step's first cell.
        </div>
      )}
      {firstCellOfStep && (
        <>
          <div className="kale-field kale-prev">
            <span>Depends on</span>
            {above.length === 0 ? (
              <i>no step above this cell</i>
            ) : (
              above.map(s => (
                <label key={s} className="kale-prev-option">
                  <input
                    type="checkbox"
                    value={s}
                    checked={a.prev.includes(s)}
                    onChange={e =>
                      write({
                        ...a,
                        prev: e.target.checked
                          ? [...a.prev, s]
                          : a.prev.filter(p => p !== s)
                      })
                    }
                  />
                  <span className="kale-swatch" style={{ background: stepColor(block.stepsAbove.indexOf(s)) }} />
                  {s}
                </label>
              ))
            )}
            {a.prev
              .filter(p => !above.includes(p))
              .map(p => (
                <label key={p} className="kale-prev-option kale-invalid">
                  <input type="checkbox" checked onChange={() => write({ ...a, prev: a.prev.filter(x => x !== p) })} />
                  {p} (no such step above)
                </label>
              ))}
          </div>
          <div className="kale-field-row">
            <label className="kale-field kale-small">
              <span>GPUs</span>
              <input
                className="kale-gpus"
                type="number"
                min={0}
                value={gpu}
                onChange={e => setLimit('nvidia.com/gpu', e.target.value === '0' ? '' : e.target.value)}
              />
            </label>
            <label className="kale-field kale-small">
              <span>CPU</span>
              <input className="kale-cpu" value={limit('cpu')} placeholder="e.g. 2" onChange={e => setLimit('cpu', e.target.value)} />
            </label>
            <label className="kale-field kale-small">
              <span>Memory</span>
              <input className="kale-memory" value={limit('memory')} placeholder="e.g. 4Gi" onChange={e => setLimit('memory', e.target.value)} />
            </label>
          </div>
          {limitError && <div className="kale-name-check">{limitError}</div>}
          <label className="kale-field">
            <span>Image</span>
            <input
              className="kale-image"
              value={a.image}
              spellCheck={false}
              placeholder="the notebook's base image"
              onChange={e => write({ ...a, image: e.target.value.trim() })}
            />
          </label>
          <label className="kale-field">
            <span>Cache</span>
            <select
              className="kale-cache"
              value={a.cache}
              onChange={e => write({ ...a, cache: e.target.value as IAnnotation['cache'] })}
            >
              <option value="">default</option>
              <option value="enabled">enabled (reuse even when kale cannot vouch)</option>
              <option value="disabled">disabled (always run)</option>
            </select>
          </label>
        </>
      )}
    </div>
  );
}
