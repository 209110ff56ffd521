/**
 * The tuning dialog: each pipeline parameter as a range (with a step, or a log scale)
 * or a list of values, the objective(s) and their direction, constraints, the
 * algorithm and its settings, the trial counts. It saves them in the notebook's
 * `katib_metadata`, Kale's format, and may start the tune.
 */

import { ReactWidget } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import {
  checkForm,
  formFromMetadata,
  IFormProblem,
  ITuneForm,
  metadataFromForm,
  MULTI_ALGORITHMS,
  SINGLE_ALGORITHMS
} from './katib';
import type { NotebookSession } from './session';

/** Opens the dialog; resolves true when the user asked to start the tune. */
export function openTuneDialog(session: NotebookSession): Promise<boolean> {
  const p = session.validation?.pipeline;
  const metrics = p?.metrics ?? [];
  const form = formFromMetadata(session.kubeflow().katib_metadata, p?.parameters ?? [], metrics);
  return new Promise(resolve => {
    const modal = new Modal('Tune: search space and objective', () => resolve(false));
    const body = ReactWidget.create(
      <TuneForm
        initial={form}
        metrics={metrics}
        onCancel={() => {
          modal.dispose();
          resolve(false);
        }}
        onSave={(f, start) => {
          session.setKubeflow({ katib_metadata: metadataFromForm(f, metrics) });
          modal.dispose();
          resolve(start);
        }}
      />
    );
    modal.setBody(body);
    modal.open();
  });
}

/** A modal in JupyterLab's dialog style whose buttons live in its body. */
class Modal extends Widget {
  private _content: HTMLElement;
  private _host: HTMLElement;
  private _body: Widget | null = null;

  constructor(
    title: string,
    private onClose: () => void
  ) {
    super();
    this.addClass('jp-Dialog');
    this.addClass('jp-ThemedContainer');
    this.addClass('kale-modal');
    this._content = document.createElement('div');
    this._content.className = 'jp-Dialog-content kale-modal-content';
    const header = document.createElement('div');
    header.className = 'jp-Dialog-header';
    header.textContent = title;
    this._host = document.createElement('div');
    this._host.className = 'jp-Dialog-body kale-modal-body';
    this._content.appendChild(header);
    this._content.appendChild(this._host);
    this.node.appendChild(this._content);
    this.node.addEventListener('keydown', this);
  }

  setBody(body: Widget): void {
    this._body = body;
  }

  open(): void {
    Widget.attach(this, document.body);
    if (this._body) {
      Widget.attach(this._body, this._host);
    }
    const first = this._host.querySelector('input, select, button') as HTMLElement | null;
    first?.focus();
  }

  handleEvent(event: Event): void {
    if (event.type === 'keydown' && (event as KeyboardEvent).key === 'Escape') {
      event.preventDefault();
      this.dispose();
      this.onClose();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._body?.dispose();
    super.dispose();
  }
}

function TuneForm(props: {
  initial: ITuneForm;
  metrics: string[];
  onCancel: () => void;
  onSave: (f: ITuneForm, start: boolean) => void;
}): JSX.Element {
  const [f, setF] = React.useState<ITuneForm>(props.initial);
  const problems = checkForm(f, props.metrics);
  const at = (field: string): IFormProblem[] => problems.filter(p => p.field === field || p.field.startsWith(`${field}.`));
  const show = (field: string) =>
    at(field).map((p, i) => (
      <div key={i} className="kale-name-check" data-field={p.field}>
        {p.message}
      </div>
    ));
  const update = (change: Partial<ITuneForm>) => setF({ ...f, ...change });
  const setParam = (i: number, change: any) =>
    update({ params: f.params.map((p, j) => (i === j ? { ...p, ...change } : p)) });
  const multi = f.objectives.length > 1;
  const algorithms = multi ? MULTI_ALGORITHMS : SINGLE_ALGORITHMS;
  return (
    <div className="kale-tune-form">
      <fieldset>
        <legend>Parameters</legend>
        <table className="kale-table kale-param-table">
          <thead>
            <tr>
              <th>tune</th>
              <th>parameter</th>
              <th>as</th>
              <th>min</th>
              <th>max</th>
              <th>step</th>
              <th>log</th>
              <th>values</th>
            </tr>
          </thead>
          <tbody>
            {f.params.map((p, i) => {
              const numeric = p.type === 'int' || p.type === 'float';
              const range = p.mode === 'range';
              return (
                <tr key={p.name} data-param={p.name} className={p.tuned ? '' : 'kale-untuned'}>
                  <td>
                    <input type="checkbox" className="kale-tuned" checked={p.tuned} onChange={e => setParam(i, { tuned: e.target.checked })} />
                  </td>
                  <td>
                    {p.name} <span className="kale-muted">{p.type}</span>
                  </td>
                  <td>
                    {numeric ? (
                      <select className="kale-mode" value={p.mode} disabled={!p.tuned} onChange={e => setParam(i, { mode: e.target.value })}>
                        <option value="range">range</option>
                        <option value="list">list</option>
                      </select>
                    ) : (
                      'list'
                    )}
                  </td>
                  <td>
                    <input className="kale-min" disabled={!p.tuned || !range} value={range ? p.min : ''} onChange={e => setParam(i, { min: e.target.value })} />
                  </td>
                  <td>
                    <input className="kale-max" disabled={!p.tuned || !range} value={range ? p.max : ''} onChange={e => setParam(i, { max: e.target.value })} />
                  </td>
                  <td>
                    <input className="kale-step" disabled={!p.tuned || !range} value={range ? p.step : ''} placeholder="—" onChange={e => setParam(i, { step: e.target.value })} />
                  </td>
                  <td>
                    <input type="checkbox" className="kale-log" disabled={!p.tuned || !range} checked={range && p.log} onChange={e => setParam(i, { log: e.target.checked })} />
                  </td>
                  <td>
                    <input className="kale-list" disabled={!p.tuned || range} value={range ? '' : p.list} placeholder="a, b, c" onChange={e => setParam(i, { list: e.target.value })} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {show('params')}
      </fieldset>
      <fieldset>
        <legend>Objective</legend>
        {f.objectives.map((o, i) => (
          <div key={i} className="kale-objective-row" data-objective={i}>
            <select
              className="kale-objective"
              value={o.metric}
              onChange={e => update({ objectives: f.objectives.map((x, j) => (i === j ? { ...x, metric: e.target.value } : x)) })}
            >
              {!props.metrics.includes(o.metric) && <option value={o.metric}>{o.metric || '(pick a metric)'}</option>}
              {props.metrics.map(m => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
            <select
              className="kale-direction"
              value={o.direction}
              onChange={e => update({ objectives: f.objectives.map((x, j) => (i === j ? { ...x, direction: e.target.value as any } : x)) })}
            >
              <option value="maximize">maximize</option>
              <option value="minimize">minimize</option>
            </select>
            {i === 0 && !multi && (
              <label className="kale-inline">
                goal <input className="kale-goal" value={f.goal} placeholder="none" onChange={e => update({ goal: e.target.value })} />
              </label>
            )}
            {i > 0 && (
              <button className="kale-link-button" onClick={() => update({ objectives: f.objectives.filter((_, j) => j !== i) })}>
                remove
              </button>
            )}
            {show(`objectives.${i}`)}
          </div>
        ))}
        {show('goal')}
        {props.metrics.length > f.objectives.length && (
          <button
            className="kale-link-button kale-add-objective"
            onClick={() =>
              update({
                objectives: [...f.objectives, { metric: props.metrics.find(m => !f.objectives.some(o => o.metric === m)) ?? '', direction: 'maximize' }],
                algorithm: MULTI_ALGORITHMS.includes(f.algorithm) ? f.algorithm : 'nsga2',
                goal: ''
              })
            }
          >
            + another objective (Pareto front)
          </button>
        )}
        <div className="kale-constraints">
          {f.constraints.map((c, i) => (
            <div key={i} className="kale-constraint-row">
              subject to{' '}
              <select value={c.metric} onChange={e => update({ constraints: f.constraints.map((x, j) => (i === j ? { ...x, metric: e.target.value } : x)) })}>
                {props.metrics.map(m => (
                  <option key={m}>{m}</option>
                ))}
              </select>
              <select value={c.op} onChange={e => update({ constraints: f.constraints.map((x, j) => (i === j ? { ...x, op: e.target.value as any } : x)) })}>
                <option value="<=">{'\u2264'}</option>
                <option value=">=">{'\u2265'}</option>
              </select>
              <input value={c.value} onChange={e => update({ constraints: f.constraints.map((x, j) => (i === j ? { ...x, value: e.target.value } : x)) })} />
              <button className="kale-link-button" onClick={() => update({ constraints: f.constraints.filter((_, j) => j !== i) })}>
                remove
              </button>
              {show(`constraints.${i}`)}
            </div>
          ))}
          {props.metrics.length > 0 && (
            <button
              className="kale-link-button kale-add-constraint"
              onClick={() => update({ constraints: [...f.constraints, { metric: props.metrics[0], op: '>=', value: '' }] })}
            >
              + constraint
            </button>
          )}
        </div>
      </fieldset>
      <fieldset>
        <legend>Search</legend>
        <label className="kale-field kale-inline">
          algorithm{' '}
          <select className="kale-algorithm" value={f.algorithm} onChange={e => update({ algorithm: e.target.value })}>
            {!algorithms.includes(f.algorithm) && <option value={f.algorithm}>{f.algorithm}</option>}
            {algorithms.map(a => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        {show('algorithm')}
        <div className="kale-settings-rows">
          {f.settings.map((s, i) => (
            <div key={i} className="kale-setting-row">
              <input className="kale-setting-name" value={s.name} placeholder="setting" onChange={e => update({ settings: f.settings.map((x, j) => (i === j ? { ...x, name: e.target.value } : x)) })} />
              ={' '}
              <input className="kale-setting-value" value={s.value} placeholder="value" onChange={e => update({ settings: f.settings.map((x, j) => (i === j ? { ...x, value: e.target.value } : x)) })} />
              <button className="kale-link-button" onClick={() => update({ settings: f.settings.filter((_, j) => j !== i) })}>
                remove
              </button>
            </div>
          ))}
          <button className="kale-link-button kale-add-setting" onClick={() => update({ settings: [...f.settings, { name: '', value: '' }] })}>
            + algorithm setting (e.g. random_state = 7)
          </button>
        </div>
        <div className="kale-field-row">
          <label className="kale-field kale-small">
            <span>max trials</span>
            <input className="kale-max-trials" value={f.maxTrials} onChange={e => update({ maxTrials: e.target.value })} />
          </label>
          <label className="kale-field kale-small">
            <span>in parallel</span>
            <input className="kale-parallel" value={f.parallel} onChange={e => update({ parallel: e.target.value })} />
          </label>
          <label className="kale-field kale-small">
            <span>failed trials allowed</span>
            <input className="kale-max-failed" value={f.maxFailed} onChange={e => update({ maxFailed: e.target.value })} />
          </label>
        </div>
        {show('maxTrials')}
        {show('parallel')}
        {show('maxFailed')}
      </fieldset>
      <div className="jp-Dialog-footer kale-modal-footer">
        <button className="jp-Dialog-button jp-mod-reject jp-mod-styled kale-cancel" onClick={props.onCancel}>
          <div className="jp-Dialog-buttonLabel">Cancel</div>
        </button>
        <button className="jp-Dialog-button jp-mod-styled kale-save" disabled={problems.length > 0} onClick={() => props.onSave(f, false)}>
          <div className="jp-Dialog-buttonLabel">Save</div>
        </button>
        <button className="jp-Dialog-button jp-mod-accept jp-mod-styled kale-save-and-tune" disabled={problems.length > 0} onClick={() => props.onSave(f, true)}>
          <div className="jp-Dialog-buttonLabel">Save and tune</div>
        </button>
      </div>
    </div>
  );
}
