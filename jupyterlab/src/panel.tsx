/**
 * The Kale panel (left sidebar): the notebook's pipeline settings, kale's problems
 * (click one to jump to its cell and line), the pipeline as kale sees it, run and tune
 * on this machine, experiments, and Kubeflow.
 */

import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import { follow, KaleError } from './api';
import type { Controller } from './controller';
import { summary } from './diagnostics';
import { Graph } from './graph';
import { bestTrial } from './progress';
import type { NotebookSession } from './session';
import { stepNames } from './structure';

export class KalePanel extends ReactWidget {
  constructor(readonly controller: Controller) {
    super();
    this.addClass('kale-panel');
    this.id = 'kale-panel';
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.controller.changed}>
        {() => <PanelBody controller={this.controller} />}
      </UseSignal>
    );
  }
}

function Section(props: {
  title: string;
  extra?: React.ReactNode;
  className?: string;
  children: React.ReactNode;
  open?: boolean;
}): JSX.Element {
  const [open, setOpen] = React.useState(props.open ?? true);
  return (
    <section className={`kale-section ${props.className ?? ''}`}>
      <header onClick={() => setOpen(!open)}>
        <span className="kale-caret">{open ? '\u25be' : '\u25b8'}</span>
        <span className="kale-section-title">{props.title}</span>
        {props.extra}
      </header>
      {open && <div className="kale-section-body">{props.children}</div>}
    </section>
  );
}

function PanelBody({ controller }: { controller: Controller }): JSX.Element {
  const session = controller.current;
  const info = controller.info;
  return (
    <div className="kale-panel-body">
      <div className="kale-title">
        <span className="kale-logo">kale</span>
        <span className="kale-muted kale-version">
          {info?.version ?? (controller.infoError || info?.problem) ?? ''}
        </span>
      </div>
      {(info?.problem || controller.infoError) && (
        <div className="kale-problem kale-problem-error">{info?.problem || controller.infoError}</div>
      )}
      {!session ? (
        <div className="kale-empty">
          Open a notebook to annotate its cells with Kale's tags, check it as you type, and run or
          tune it here.
        </div>
      ) : (
        <SessionView controller={controller} session={session} />
      )}
    </div>
  );
}

function SessionView({ controller, session }: { controller: Controller; session: NotebookSession }): JSX.Element {
  const v = session.validation;
  const diags = v?.diagnostics ?? [];
  const errors = diags.filter(d => d.severity === 'error').length;
  const status = session.validationError
    ? 'kale could not check it'
    : !v
      ? 'checking…'
      : errors
        ? summary(diags)
        : `valid${diags.length ? ` (${summary(diags)})` : ''}`;
  return (
    <>
      <div className="kale-notebook">
        <span className="kale-notebook-name" title={session.path}>
          {session.path.split('/').pop()}
        </span>
        <span
          className={`kale-status ${errors || session.validationError ? 'kale-status-error' : v ? 'kale-status-ok' : ''}`}
          data-kale-validation={v ? (errors ? 'errors' : 'ok') : 'pending'}
        >
          {session.validating ? '\u27f3 ' : ''}
          {status}
        </span>
      </div>
      {session.validationError && (
        <div className="kale-problem kale-problem-error">{session.validationError}</div>
      )}
      <Settings session={session} />
      <Problems session={session} />
      <Pipeline session={session} />
      <RunSection controller={controller} session={session} />
      <TuneSection controller={controller} session={session} />
      <ExperimentsSection controller={controller} session={session} />
      <KubeflowSection controller={controller} session={session} />
    </>
  );
}

function Settings({ session }: { session: NotebookSession }): JSX.Element {
  const k = session.kubeflow();
  const field = (key: string, label: string, placeholder: string) => (
    <label className="kale-field">
      <span>{label}</span>
      <input
        className={`kale-setting-${key}`}
        value={k[key] ?? ''}
        placeholder={placeholder}
        spellCheck={false}
        onChange={e => session.setKubeflow({ [key]: e.target.value })}
      />
    </label>
  );
  const name = String(k.pipeline_name ?? '');
  const nameOk = !name || /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name);
  return (
    <Section title="Pipeline settings" open={false} className="kale-settings">
      {field('pipeline_name', 'Pipeline name', 'e.g. digits-svc')}
      {!nameOk && (
        <div className="kale-name-check">
          a pipeline name is lowercase letters, digits and `-`, starting and ending with a letter or
          digit
        </div>
      )}
      {field('experiment_name', 'Experiment', 'e.g. digits')}
      {field('pipeline_description', 'Description', '')}
      {field('base_image', 'Base image', 'e.g. python:3.11')}
    </Section>
  );
}

function Problems({ session }: { session: NotebookSession }): JSX.Element {
  const diags = session.validation?.diagnostics ?? [];
  return (
    <Section title={`Problems (${diags.length})`} className="kale-problems">
      {diags.length === 0 ? (
        <div className="kale-muted">{session.validation ? 'kale finds no problem.' : '…'}</div>
      ) : (
        <ul className="kale-problem-list">
          {diags.map((d, i) => (
            <li
              key={i}
              className={`kale-problem kale-problem-${d.severity} kale-clickable`}
              data-kale-cell={d.cell ?? ''}
              onClick={() => d.cell && void session.jumpTo(d.cell - 1, d.line)}
              title={d.cell ? 'Go to the cell' : ''}
            >
              <span className="kale-problem-where">
                {d.cell ? `cell ${d.cell}${d.line ? `, line ${d.line}` : ''}` : d.severity}
              </span>{' '}
              {d.message}
              {d.hint && <div className="kale-problem-hint">hint: {d.hint}</div>}
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function Pipeline({ session }: { session: NotebookSession }): JSX.Element {
  const p = session.validation?.pipeline;
  const order = stepNames(
    session.blocks().map(b => ({ cellType: 'code', tags: b.step ? [`step:${b.step}`] : [] }))
  );
  const status: Record<string, string> = {};
  for (const s of session.run?.view.steps ?? []) {
    status[s.name] = s.status;
  }
  const firstCell = (name: string) => {
    const i = session.blocks().findIndex(b => b.step === name);
    if (i >= 0) {
      void session.jumpTo(i);
    }
  };
  return (
    <Section title="Pipeline" className="kale-pipeline">
      {!p ? (
        <div className="kale-muted">
          {session.validation ? 'Fix the problems above to see the pipeline.' : '…'}
        </div>
      ) : (
        <>
          <div className="kale-muted">
            {p.steps.length} step{p.steps.length === 1 ? '' : 's'} · {p.pipeline.name}
          </div>
          {p.steps.length > 0 && <Graph steps={p.steps} order={order} status={status} onStep={firstCell} />}
          <table className="kale-table kale-parameters">
            <thead>
              <tr>
                <th>parameter</th>
                <th>type</th>
                <th>default</th>
              </tr>
            </thead>
            <tbody>
              {p.parameters.map(x => (
                <tr key={x.name}>
                  <td>{x.name}</td>
                  <td>{x.type}</td>
                  <td>{JSON.stringify(x.default)}</td>
                </tr>
              ))}
              {p.parameters.length === 0 && (
                <tr>
                  <td colSpan={3} className="kale-muted">
                    no pipeline-parameters cell
                  </td>
                </tr>
              )}
            </tbody>
          </table>
          <div className="kale-metrics-found">
            metrics: {p.metrics.length ? p.metrics.join(', ') : <i>none (no pipeline-metrics cell)</i>}
          </div>
        </>
      )}
    </Section>
  );
}

const STATUS_MARK: Record<string, string> = {
  pending: '\u00b7',
  running: '\u25b6',
  succeeded: '\u2713',
  cached: '\u2713',
  failed: '\u2717',
  not_run: '\u2013',
  interrupted: '\u25a0'
};

function RunSection({ controller, session }: { controller: Controller; session: NotebookSession }): JSX.Element {
  const run = session.run;
  const running = !!run && run.rc === null && !run.error;
  const params = session.validation?.pipeline?.parameters ?? [];
  const [overrides, setOverrides] = React.useState<Record<string, string>>({});
  const [debugError, setDebugError] = React.useState<string | null>(null);
  const canRun = !!session.validation?.ok && !running;
  const jump = (cell: number | null, line: number | null) => cell && void session.jumpTo(cell - 1, line ?? undefined);
  return (
    <Section title="Run" className="kale-run">
      {params.length > 0 && (
        <div className="kale-overrides">
          {params.map(p => (
            <label key={p.name} className="kale-field kale-small">
              <span>{p.name}</span>
              <input
                data-param={p.name}
                value={overrides[p.name] ?? ''}
                placeholder={String(p.default)}
                onChange={e => setOverrides({ ...overrides, [p.name]: e.target.value })}
              />
            </label>
          ))}
        </div>
      )}
      <div className="kale-buttons">
        <button
          className="jp-mod-styled jp-mod-accept kale-run-button"
          disabled={!canRun}
          title={session.validation?.ok ? 'Save the notebook and run its pipeline on this machine' : 'Fix the problems first'}
          onClick={() => {
            const set: Record<string, string> = {};
            for (const [k, v] of Object.entries(overrides)) {
              if (v.trim()) {
                set[k] = v.trim();
              }
            }
            void session.startRun(set);
          }}
        >
          Run
        </button>
        {running && run?.id && (
          <button className="jp-mod-styled kale-stop-run" onClick={() => void session.stop('run')}>
            Stop
          </button>
        )}
      </div>
      {run?.error && <pre className="kale-problem kale-problem-error kale-pre">{run.error}</pre>}
      {run && run.view.steps.length > 0 && (
        <ul className="kale-steps" data-kale-run={run.view.status} data-run-id={run.view.runId ?? ''}>
          {run.view.steps.map(s => (
            <li key={s.name} className={`kale-step kale-status-${s.status}`} data-step={s.name}>
              <span className="kale-mark">{STATUS_MARK[s.status] ?? '?'}</span>
              <span className="kale-step-name-label">{s.name}</span>
              <span className="kale-muted">
                {s.status === 'cached' ? 'cached' : s.status}
                {s.seconds !== null ? ` · ${s.seconds.toFixed(2)}s` : ''}
              </span>
              {s.cacheNote && <div className="kale-cache-note">\u21bb ran again: {s.cacheNote}</div>}
            </li>
          ))}
        </ul>
      )}
      {run?.view.error && (
        <div className="kale-problem kale-problem-error kale-run-error">
          step <b>{run.view.error.step}</b> failed
          {run.view.error.cell ? (
            <>
              {' at '}
              <button className="kale-link-button" onClick={() => jump(run.view.error!.cell, run.view.error!.line)}>
                cell {run.view.error.cell}, line {run.view.error.line}
              </button>
            </>
          ) : null}
          : {run.view.error.type}: {run.view.error.message}
          {run.view.error.code && <pre className="kale-pre">{run.view.error.code}</pre>}
          {run.view.runId && (
            <button
              className="jp-mod-styled kale-debug-button"
              onClick={() => {
                setDebugError(null);
                controller.debug(session, run.view.runId!, run.view.error!.step).catch(e => setDebugError(e instanceof KaleError ? e.message : String(e)));
              }}
            >
              Debug this step in a notebook
            </button>
          )}
          {debugError && <div>{debugError}</div>}
        </div>
      )}
      {run && Object.keys(run.view.metrics).length > 0 && (
        <table className="kale-table kale-run-metrics">
          <tbody>
            {Object.entries(run.view.metrics).map(([k, v]) => (
              <tr key={k} data-metric={k}>
                <td>{k}</td>
                <td className="kale-metric-value">{String(v)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {run && run.view.status !== 'running' && run.view.seconds !== null && (
        <div className="kale-muted">
          run {run.view.runId} {run.view.status} in {run.view.seconds.toFixed(2)}s
        </div>
      )}
      {run && (running || run.rc) ? <Log lines={run.log} /> : null}
    </Section>
  );
}

function Log({ lines }: { lines: string[] }): JSX.Element | null {
  if (!lines.length) {
    return null;
  }
  return (
    <details className="kale-log">
      <summary>kale's output</summary>
      <pre className="kale-pre">{lines.slice(-30).join('\n')}</pre>
    </details>
  );
}

function TuneSection({ controller, session }: { controller: Controller; session: NotebookSession }): JSX.Element {
  const tune = session.tune;
  const running = !!tune && tune.rc === null && !tune.error;
  const katib = session.kubeflow().katib_metadata;
  const v = tune?.view;
  const best = v ? bestTrial(v) : null;
  const objective = v?.objectives[0]?.name ?? '';
  const canTune = !!session.validation?.ok && !running && (session.validation?.pipeline?.parameters.length ?? 0) > 0;
  return (
    <Section title="Tune" className="kale-tune">
      <div className="kale-muted">
        {katib
          ? `search space: ${(katib.parameters ?? []).map((p: any) => p.name).join(', ') || 'none'} · ${katib.algorithm?.algorithmName ?? ''} · ${katib.maxTrialCount ?? 12} trials`
          : 'no search space yet (katib_metadata)'}
      </div>
      <div className="kale-buttons">
        <button
          className="jp-mod-styled jp-mod-accept kale-tune-button"
          disabled={!canTune}
          title={canTune ? 'Edit the search space (katib_metadata) and tune' : 'Needs a valid notebook with pipeline parameters'}
          onClick={() => void controller.tuneDialog(session)}
        >
          Tune…
        </button>
        {tune && (
          <button className="jp-mod-styled kale-open-live" onClick={() => controller.liveView(session)}>
            Live view
          </button>
        )}
        {running && tune?.id && (
          <button className="jp-mod-styled kale-stop-tune" onClick={() => void session.stop('tune')}>
            Stop
          </button>
        )}
      </div>
      {tune?.error && <pre className="kale-problem kale-problem-error kale-pre">{tune.error}</pre>}
      {v && v.experiment && (
        <div className="kale-tune-summary" data-kale-tune={v.status}>
          <div>
            <b>{v.experiment}</b> · {v.status === 'running' ? 'running' : `${v.status}: ${v.reason}`}
          </div>
          <div>
            trials {v.finished.length}/{v.maxTrials} · {v.running.length} running
          </div>
          {best && (
            <div className="kale-best">
              best: trial {best.trial}, {objective}={best.value === null ? '' : Number(best.value.toPrecision(6))}
            </div>
          )}
        </div>
      )}
    </Section>
  );
}

function ExperimentsSection({ controller, session }: { controller: Controller; session: NotebookSession }): JSX.Element {
  const list = session.experiments ?? [];
  const [picked, setPicked] = React.useState<string[]>([]);
  return (
    <Section
      title={`Experiments (${list.length})`}
      className="kale-experiments"
      extra={
        <button
          className="kale-link-button kale-refresh"
          title="Reload the list"
          onClick={e => {
            e.stopPropagation();
            void session.loadExperiments();
          }}
        >
          reload
        </button>
      }
    >
      {list.length === 0 ? (
        <div className="kale-muted">No experiment in this notebook's store yet.</div>
      ) : (
        <>
          <ul className="kale-experiment-list">
            {list.map((e: any) => (
              <li key={e.name}>
                <input
                  type="checkbox"
                  checked={picked.includes(e.name)}
                  onChange={ev => setPicked(ev.target.checked ? [...picked, e.name] : picked.filter(n => n !== e.name))}
                />
                <button className="kale-link-button" onClick={() => controller.experiments(session, [e.name])}>
                  {e.name}
                </button>{' '}
                <span className="kale-muted">
                  {e.status} · {e.trials ?? e.trial_count ?? ''} trials
                </span>
              </li>
            ))}
          </ul>
          <button
            className="jp-mod-styled kale-compare-button"
            disabled={picked.length < 2}
            onClick={() => controller.experiments(session, picked)}
          >
            Compare {picked.length > 1 ? picked.length : ''}
          </button>
        </>
      )}
    </Section>
  );
}

function KubeflowSection({ controller, session }: { controller: Controller; session: NotebookSession }): JSX.Element {
  const cluster = controller.info?.cluster;
  const [busy, setBusy] = React.useState(false);
  const [result, setResult] = React.useState<{ ok: boolean; text: string; file?: string; links?: string[] } | null>(null);
  const ok = !!session.validation?.ok;
  const compile = async (target: 'kfp' | 'katib') => {
    setBusy(true);
    setResult(null);
    try {
      await session.panel.context.save();
      const out = await controller.api.compile(session.path, target);
      setResult({ ok: true, text: `wrote ${out.file}`, file: out.file });
    } catch (e) {
      setResult({ ok: false, text: String(e instanceof Error ? e.message : e) });
    } finally {
      setBusy(false);
    }
  };
  const onCluster = async (kind: 'submit' | 'katib') => {
    setBusy(true);
    setResult(null);
    try {
      await session.panel.context.save();
      const job = await controller.api.startJob({ kind, path: session.path });
      const last = await follow(controller.api, job.id, (_, poll) =>
        setResult({ ok: true, text: poll.log.slice(-8).join('\n') })
      );
      const text = last.log.join('\n');
      const links = [
        ...new Set((text.match(/https?:\/\/[^\s`'"()]+/g) ?? []).map(l => l.replace(/[.,;:]+$/, '')))
      ];
      setResult({ ok: last.rc === 0, text: last.log.slice(-12).join('\n'), links });
    } catch (e) {
      setResult({ ok: false, text: String(e instanceof Error ? e.message : e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Kubeflow" className="kale-kubeflow" open={false}>
      <div className="kale-muted">
        {cluster?.found
          ? `cluster found (${cluster.how}: ${cluster.where})`
          : 'no cluster found (no kubeconfig, not in a pod): compile to files'}
      </div>
      <div className="kale-buttons">
        {cluster?.found && (
          <>
            <button className="jp-mod-styled jp-mod-accept" disabled={!ok || busy} onClick={() => void onCluster('submit')}>
              Run on Kubeflow Pipelines
            </button>
            <button className="jp-mod-styled" disabled={!ok || busy} onClick={() => void onCluster('katib')}>
              Tune on Katib
            </button>
          </>
        )}
        <button className="jp-mod-styled kale-compile-kfp" disabled={!ok || busy} onClick={() => void compile('kfp')}>
          Compile KFP pipeline
        </button>
        <button className="jp-mod-styled kale-compile-katib" disabled={!ok || busy} onClick={() => void compile('katib')}>
          Compile Katib experiment
        </button>
      </div>
      {result && (
        <div className={`kale-problem ${result.ok ? 'kale-ok' : 'kale-problem-error'}`}>
          <pre className="kale-pre">{result.text}</pre>
          {result.file && (
            <button className="kale-link-button" onClick={() => void controller.open(result.file!)}>
              open {result.file}
            </button>
          )}
          {(result.links ?? []).map(l => (
            <div key={l}>
              <a href={l} target="_blank" rel="noreferrer">
                {l}
              </a>
            </div>
          ))}
        </div>
      )}
    </Section>
  );
}
