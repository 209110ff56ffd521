/**
 * What the panel shows of a run or a tune, folded from kale's progress events
 * (`kale run|tune --events -`, relayed by the server extension).
 */

export type StepStatus =
  | 'pending'
  | 'running'
  | 'succeeded'
  | 'cached'
  | 'failed'
  | 'not_run'
  | 'interrupted';

export interface IStepView {
  name: string;
  cells: number[];
  status: StepStatus;
  seconds: number | null;
  /** Why it ran again although it ran before. */
  cacheNote: string | null;
  /** The last lines it printed. */
  output: string[];
}

export interface IFailure {
  step: string;
  type: string;
  message: string;
  cell: number | null;
  line: number | null;
  code: string | null;
}

export interface IRunView {
  steps: IStepView[];
  status: 'running' | 'succeeded' | 'failed' | 'interrupted';
  runId: string | null;
  metrics: Record<string, unknown>;
  error: IFailure | null;
  seconds: number | null;
}

const OUTPUT_LINES = 20;

export function newRun(): IRunView {
  return {
    steps: [],
    status: 'running',
    runId: null,
    metrics: {},
    error: null,
    seconds: null
  };
}

/** Applies one event to a run's view (a new object; the old one is left as it was). */
export function foldRun(view: IRunView, e: any): IRunView {
  const v: IRunView = { ...view, steps: view.steps.map(s => ({ ...s })) };
  const step = (name: string): IStepView => {
    let s = v.steps.find(x => x.name === name);
    if (!s) {
      s = {
        name,
        cells: [],
        status: 'pending',
        seconds: null,
        cacheNote: null,
        output: []
      };
      v.steps.push(s);
    }
    return s;
  };
  switch (e?.event) {
    case 'run_started':
      for (const s of e.steps ?? []) {
        step(s.name).cells = s.cells ?? [];
      }
      break;
    case 'step_started':
      step(e.step).status = 'running';
      break;
    case 'step_output': {
      const s = step(e.step);
      s.output = [...s.output, String(e.line)].slice(-OUTPUT_LINES);
      break;
    }
    case 'step_cache_note':
      step(e.step).cacheNote = e.note;
      break;
    case 'step_finished': {
      const s = step(e.step);
      s.status = e.status;
      s.seconds = e.seconds;
      break;
    }
    case 'run_finished':
      v.status = e.status;
      v.runId = e.run_id;
      v.metrics = e.metrics ?? {};
      v.error = e.error ?? null;
      v.seconds = e.seconds;
      for (const s of e.steps ?? []) {
        const mine = step(s.name);
        mine.status = s.status;
        mine.seconds = s.seconds;
        mine.cacheNote = s.cache_note ?? mine.cacheNote;
      }
      break;
  }
  return v;
}

export interface ITrialView {
  trial: number;
  status: string;
  value: number | null;
  values: number[];
  feasible: boolean;
  params: Record<string, unknown>;
  metrics: Record<string, unknown>;
  seconds: number | null;
  error: string | null;
}

export interface ITuneView {
  experiment: string;
  status: 'running' | 'succeeded' | 'failed' | 'interrupted';
  reason: string;
  objectives: { name: string; direction: string }[];
  algorithm: string;
  maxTrials: number;
  /** Trials in the order they finished. */
  finished: ITrialView[];
  running: number[];
  best: { trial: number; value: number } | null;
  frontSize: number | null;
  cacheHits: number;
  cacheMisses: number;
  elapsed: number;
  notices: string[];
}

export function newTune(): ITuneView {
  return {
    experiment: '',
    status: 'running',
    reason: '',
    objectives: [],
    algorithm: '',
    maxTrials: 0,
    finished: [],
    running: [],
    best: null,
    frontSize: null,
    cacheHits: 0,
    cacheMisses: 0,
    elapsed: 0,
    notices: []
  };
}

function trialOf(e: any): ITrialView {
  return {
    trial: e.trial,
    status: e.status,
    value: e.value ?? null,
    values: e.values ?? [],
    feasible: e.feasible !== false,
    params: e.params ?? {},
    metrics: e.metrics ?? {},
    seconds: e.seconds ?? null,
    error: e.error ?? null
  };
}

export function foldTune(view: ITuneView, e: any): ITuneView {
  const v: ITuneView = { ...view };
  switch (e?.event) {
    case 'tune_started':
      v.experiment = e.experiment;
      v.objectives = e.objectives ?? [];
      v.algorithm = e.algorithm;
      v.maxTrials = e.max_trials;
      break;
    case 'trial_started':
      if (!v.running.includes(e.trial)) {
        v.running = [...v.running, e.trial];
      }
      break;
    case 'trial_finished':
      v.finished = [...v.finished.filter(t => t.trial !== e.trial), trialOf(e)];
      v.running = v.running.filter(n => n !== e.trial);
      break;
    case 'progress':
      v.maxTrials = e.max_trials;
      v.running = e.running ?? [];
      v.best = e.best ?? null;
      v.frontSize = e.front_size ?? null;
      v.cacheHits = e.cache_hits;
      v.cacheMisses = e.cache_misses;
      v.elapsed = e.elapsed;
      break;
    case 'notice':
    case 'warning':
      v.notices = [...v.notices, String(e.message)].slice(-5);
      break;
    case 'tune_finished':
      v.status = e.status;
      v.reason = e.reason;
      v.best = e.best ? { trial: e.best.trial, value: e.best.value } : v.best;
      v.running = [];
      break;
  }
  return v;
}

/** The trial record of the best trial so far, if it finished. */
export function bestTrial(v: ITuneView): ITrialView | null {
  if (!v.best) {
    return null;
  }
  return v.finished.find(t => t.trial === v.best!.trial) ?? null;
}

export interface IHistoryPoint {
  trial: number;
  value: number;
  best: number;
}

/**
 * The history plot's points: each succeeded trial's objective by trial number and the
 * best so far (feasible trials only), for the first objective.
 */
export function history(v: ITuneView): IHistoryPoint[] {
  const minimize = v.objectives[0]?.direction === 'minimize';
  const done = v.finished
    .filter(t => t.status === 'succeeded' && t.value !== null)
    .sort((a, b) => a.trial - b.trial);
  const out: IHistoryPoint[] = [];
  let best: number | null = null;
  for (const t of done) {
    const value = t.value as number;
    if (t.feasible && (best === null || (minimize ? value < best : value > best))) {
      best = value;
    }
    out.push({ trial: t.trial, value, best: best ?? value });
  }
  return out;
}

/** `step \`train\` failed at cell 7, line 3: ...` → where to jump. */
export function failureLocation(
  error: string | null
): { step: string; cell: number; line: number } | null {
  const m = /step `([^`]+)` failed at cell (\d+), line (\d+)/.exec(error ?? '');
  return m ? { step: m[1], cell: Number(m[2]), line: Number(m[3]) } : null;
}
