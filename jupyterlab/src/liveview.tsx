/**
 * The live view of a tune, in the main area: progress, the best trial so far, the
 * history plot, every trial as it finishes; stop, resume, rerun the best trial, open a
 * failed trial's step as a notebook.
 */

import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import type { Controller } from './controller';
import { HistoryPlot } from './graph';
import { bestTrial, failureLocation, history, ITrialView } from './progress';
import type { NotebookSession } from './session';

export class LiveView extends ReactWidget {
  constructor(
    readonly controller: Controller,
    readonly session: NotebookSession
  ) {
    super();
    this.addClass('kale-live');
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.session.changed}>
        {() => <Live controller={this.controller} session={this.session} />}
      </UseSignal>
    );
  }
}

const fmt = (v: unknown): string =>
  typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v);

function Live({ controller, session }: { controller: Controller; session: NotebookSession }): JSX.Element {
  const tune = session.tune;
  const [message, setMessage] = React.useState<string | null>(null);
  if (!tune) {
    return <div className="kale-empty">No tune started from this notebook yet.</div>;
  }
  const v = tune.view;
  const running = tune.rc === null && !tune.error;
  const best = bestTrial(v);
  const objective = v.objectives[0]?.name ?? 'objective';
  const done = v.finished.filter(t => t.status !== 'interrupted').length;
  const pct = v.maxTrials ? Math.min(100, (100 * done) / v.maxTrials) : 0;
  const paramNames = [...new Set(v.finished.flatMap(t => Object.keys(t.params)))];
  const metricNames = [...new Set(v.finished.flatMap(t => Object.keys(t.metrics)))];
  const trials = [...v.finished].sort((a, b) => b.trial - a.trial);
  const debug = async (t: ITrialView) => {
    setMessage(null);
    try {
      const where = failureLocation(t.error);
      const nb = await controller.debug(session, `${v.experiment}/${t.trial}`, where?.step);
      setMessage(`opened ${nb}`);
    } catch (e) {
      setMessage(String(e instanceof Error ? e.message : e));
    }
  };
  return (
    <div className="kale-live-body" data-kale-tune={v.status}>
      <h2>
        {v.experiment || 'starting…'}{' '}
        <span className="kale-muted">
          {v.objectives.map(o => `${o.direction} ${o.name}`).join(', ')} · {v.algorithm}
        </span>
      </h2>
      {tune.error && <pre className="kale-problem kale-problem-error kale-pre">{tune.error}</pre>}
      <div className="kale-progress" title={`${done} of ${v.maxTrials} trials`}>
        <div className="kale-progress-bar" style={{ width: `${pct}%` }} />
      </div>
      <div className="kale-live-counts">
        {done}/{v.maxTrials} trials · {v.finished.filter(t => t.status === 'succeeded').length} succeeded ·{' '}
        {v.finished.filter(t => t.status === 'failed').length} failed · {v.running.length} running · cache{' '}
        {v.cacheHits} hits / {v.cacheMisses} misses · {v.elapsed.toFixed(1)}s
        {!running && <span className="kale-live-status"> · {v.status}: {v.reason}</span>}
      </div>
      <div className="kale-buttons">
        {running && tune.id && (
          <button className="jp-mod-styled kale-stop-tune" onClick={() => void session.stop('tune')}>
            Stop
          </button>
        )}
        {!running && v.experiment && v.status !== 'succeeded' && (
          <button className="jp-mod-styled jp-mod-accept kale-resume" onClick={() => void session.startTune({ name: v.experiment, resume: true })}>
            Resume
          </button>
        )}
        {best && !running && (
          <button className="jp-mod-styled kale-run-best" onClick={() => void session.startRun({}, v.experiment)}>
            Run the best trial's parameters
          </button>
        )}
        {v.experiment && !running && (
          <button className="jp-mod-styled" onClick={() => controller.experiments(session, [v.experiment])}>
            Experiment details
          </button>
        )}
      </div>
      {message && <div className="kale-muted">{message}</div>}
      {v.frontSize !== null ? (
        <div className="kale-best-box">Pareto front: {v.frontSize} trial(s)</div>
      ) : (
        <div className="kale-best-box" data-kale-best={best?.trial ?? ''}>
          {best ? (
            <>
              <b>best so far: trial {best.trial}</b> · {objective}={fmt(best.value)} ·{' '}
              {Object.entries(best.params)
                .map(([k, x]) => `${k}=${fmt(x)}`)
                .join(', ')}
            </>
          ) : (
            'no trial has succeeded yet'
          )}
        </div>
      )}
      <HistoryPlot points={history(v)} objective={objective} />
      {v.notices.length > 0 && (
        <ul className="kale-notices">
          {v.notices.map((n, i) => (
            <li key={i}>{n}</li>
          ))}
        </ul>
      )}
      <table className="kale-table kale-trials">
        <thead>
          <tr>
            <th>trial</th>
            <th>status</th>
            {paramNames.map(p => (
              <th key={p}>{p}</th>
            ))}
            {metricNames.map(m => (
              <th key={m}>{m}</th>
            ))}
            <th>s</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {v.running.map(n => (
            <tr key={`r${n}`} className="kale-status-running">
              <td>{n}</td>
              <td>running</td>
              <td colSpan={paramNames.length + metricNames.length + 2} />
            </tr>
          ))}
          {trials.map(t => (
            <tr key={t.trial} className={`kale-status-${t.status} ${best?.trial === t.trial ? 'kale-best-row' : ''}`} data-trial={t.trial}>
              <td>{t.trial}</td>
              <td>
                {t.status}
                {t.feasible ? '' : ' (infeasible)'}
              </td>
              {paramNames.map(p => (
                <td key={p}>{t.params[p] === undefined ? '' : fmt(t.params[p])}</td>
              ))}
              {metricNames.map(m => (
                <td key={m}>{t.metrics[m] === undefined ? '' : fmt(t.metrics[m])}</td>
              ))}
              <td>{t.seconds === null ? '' : t.seconds.toFixed(1)}</td>
              <td>
                {t.status === 'failed' && (
                  <>
                    <span className="kale-trial-error" title={t.error ?? ''}>
                      {(t.error ?? '').slice(0, 80)}
                    </span>{' '}
                    <button className="kale-link-button kale-debug-trial" onClick={() => void debug(t)}>
                      debug
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
