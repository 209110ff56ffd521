/**
 * The notebook's experiments (its `.kale/kale.db`): one in detail (settings, best
 * trial, parameter importance, history, trials), or several compared side by side with
 * their histories overlaid. Plots are kale's own SVG, shown as images.
 */

import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import type { Controller } from './controller';
import type { NotebookSession } from './session';

interface IState {
  names: string[];
  docs: any[];
  svg: string | null;
  error: string | null;
  loading: boolean;
}

const fmt = (v: unknown): string =>
  typeof v === 'number' ? String(Number(v.toPrecision(6))) : v === null || v === undefined ? '' : String(v);

function svgImage(svg: string, alt: string): JSX.Element {
  const src = `data:image/svg+xml;base64,${btoa(unescape(encodeURIComponent(svg)))}`;
  return <img className="kale-plot" src={src} alt={alt} />;
}

export class ExperimentsView extends ReactWidget {
  state: IState = { names: [], docs: [], svg: null, error: null, loading: false };
  readonly stateChanged = new Signal<this, void>(this);

  constructor(
    readonly controller: Controller,
    readonly session: NotebookSession
  ) {
    super();
    this.addClass('kale-experiments-view');
  }

  async compare(names: string[]): Promise<void> {
    this.state = { ...this.state, names, loading: true, error: null };
    this.stateChanged.emit();
    const api = this.controller.api;
    try {
      if (names.length === 1) {
        const [doc, plot] = await Promise.all([
          api.experiment(this.session.path, names[0]),
          api.plot(this.session.path, names[0], 'history').catch(() => ({ svg: null as any }))
        ]);
        this.state = { names, docs: [doc], svg: plot.svg, error: null, loading: false };
      } else {
        const out = await api.compare(this.session.path, names);
        this.state = { names, docs: out.experiments, svg: out.svg, error: null, loading: false };
      }
    } catch (e) {
      this.state = { ...this.state, error: String(e instanceof Error ? e.message : e), loading: false };
    }
    this.stateChanged.emit();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.stateChanged}>
        {() => <View view={this} />}
      </UseSignal>
    );
  }
}

function View({ view }: { view: ExperimentsView }): JSX.Element {
  const s = view.state;
  const list = view.session.experiments ?? [];
  const [picked, setPicked] = React.useState<string[]>(s.names);
  React.useEffect(() => setPicked(s.names), [s.names.join('\u0000')]);
  return (
    <div className="kale-experiments-body">
      <div className="kale-experiments-list">
        <h3>Experiments</h3>
        {list.map((e: any) => (
          <label key={e.name} className="kale-experiment-option">
            <input
              type="checkbox"
              checked={picked.includes(e.name)}
              onChange={ev => setPicked(ev.target.checked ? [...picked, e.name] : picked.filter(n => n !== e.name))}
            />
            {e.name} <span className="kale-muted">{e.status}</span>
          </label>
        ))}
        <button className="jp-mod-styled jp-mod-accept" disabled={picked.length === 0} onClick={() => void view.compare(picked)}>
          {picked.length > 1 ? 'Compare' : 'Show'}
        </button>
      </div>
      <div className="kale-experiments-main">
        {s.loading && <div className="kale-muted">loading…</div>}
        {s.error && <pre className="kale-problem kale-problem-error kale-pre">{s.error}</pre>}
        {!s.loading && s.docs.length === 1 && <Detail doc={s.docs[0]} />}
        {!s.loading && s.docs.length > 1 && <Comparison docs={s.docs} />}
        {!s.loading && s.svg && svgImage(s.svg, 'optimisation history')}
      </div>
    </div>
  );
}

function best(doc: any): any {
  return (doc.trials ?? []).find((t: any) => t.number === doc.best) ?? null;
}

function Detail({ doc }: { doc: any }): JSX.Element {
  const e = doc.experiment;
  const b = best(doc);
  const params = [...new Set((doc.trials ?? []).flatMap((t: any) => Object.keys(t.params ?? {})))] as string[];
  return (
    <div className="kale-experiment-detail" data-experiment={e.name}>
      <h2>{e.name}</h2>
      <div>
        {e.status}: {e.reason} · {e.objectives?.map((o: any) => `${o.direction} ${o.name}`).join(', ')} ·{' '}
        {e.algorithm} · {doc.trials?.length ?? 0}/{e.max_trials} trials · {fmt(e.wall_seconds)}s
      </div>
      {b && (
        <div className="kale-best-box">
          best: trial {b.number}, {e.objective}={fmt(b.value)} ·{' '}
          {Object.entries(b.params ?? {})
            .map(([k, v]) => `${k}=${fmt(v)}`)
            .join(', ')}
        </div>
      )}
      {Array.isArray(doc.importance) && doc.importance.length > 0 && (
        <div>
          importance:{' '}
          {doc.importance.map((i: any) => `${i.name} ${(100 * i.importance).toFixed(0)}%`).join(', ')}
        </div>
      )}
      <table className="kale-table">
        <thead>
          <tr>
            <th>trial</th>
            <th>status</th>
            {params.map(p => (
              <th key={p}>{p}</th>
            ))}
            <th>{e.objective}</th>
            <th>s</th>
            <th>error</th>
          </tr>
        </thead>
        <tbody>
          {(doc.trials ?? []).map((t: any) => (
            <tr key={t.number} className={`kale-status-${t.status}`}>
              <td>{t.number}</td>
              <td>{t.status}</td>
              {params.map(p => (
                <td key={p}>{fmt(t.params?.[p])}</td>
              ))}
              <td>{fmt(t.value)}</td>
              <td>{fmt(t.seconds)}</td>
              <td className="kale-trial-error">{t.error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Comparison({ docs }: { docs: any[] }): JSX.Element {
  const rows: [string, (d: any) => string][] = [
    ['status', d => `${d.experiment.status}: ${d.experiment.reason}`],
    ['objective', d => (d.experiment.objectives ?? []).map((o: any) => `${o.direction} ${o.name}`).join(', ')],
    ['algorithm', d => d.experiment.algorithm],
    ['trials', d => {
      const t = d.trials ?? [];
      return `${t.length} (${t.filter((x: any) => x.status === 'succeeded').length} ok, ${t.filter((x: any) => x.status === 'failed').length} failed)`;
    }],
    ['best value', d => fmt(best(d)?.value)],
    ['best trial', d => fmt(best(d)?.number)],
    ['best params', d => Object.entries(best(d)?.params ?? {}).map(([k, v]) => `${k}=${fmt(v)}`).join(' ')],
    ['wall time', d => `${fmt(d.experiment.wall_seconds)}s`]
  ];
  return (
    <table className="kale-table kale-comparison">
      <thead>
        <tr>
          <th />
          {docs.map(d => (
            <th key={d.experiment.name}>{d.experiment.name}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map(([label, f]) => (
          <tr key={label}>
            <td>{label}</td>
            {docs.map(d => (
              <td key={d.experiment.name}>{f(d)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
