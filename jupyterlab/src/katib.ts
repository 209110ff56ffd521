/**
 * The tuning dialog's model and the notebook's `kubeflow_notebook.katib_metadata`, in
 * the format Kale's Katib dialog saves (Katib's v1beta1 names; feasible-space values as
 * strings) so that Kale, Katib and `kale tune` read the same search space.
 *
 * Several objectives and constraints have no Katib field: they are kept beside it, in
 * `objectives` (each `{type, objectiveMetricName}`, the first being `objective`) and
 * `constraints` (`"METRIC<=VALUE"` / `"METRIC>=VALUE"`), which kale reads and Kale
 * ignores.
 */

export type Direction = 'maximize' | 'minimize';

export interface IPipelineParameter {
  name: string;
  /** As `kale inspect --json` types it: int, float, str, bool. */
  type: string;
  default: unknown;
}

export interface IParamForm {
  name: string;
  /** The pipeline parameter's own type (int, float, str, bool). */
  type: string;
  tuned: boolean;
  /** A range (int and float) or a list of values. */
  mode: 'range' | 'list';
  min: string;
  max: string;
  step: string;
  log: boolean;
  /** Comma-separated values. */
  list: string;
}

export interface IObjectiveForm {
  metric: string;
  direction: Direction;
}

export interface IConstraintForm {
  metric: string;
  op: '<=' | '>=';
  value: string;
}

export interface ITuneForm {
  objectives: IObjectiveForm[];
  /** The first objective's goal; empty for none. */
  goal: string;
  constraints: IConstraintForm[];
  algorithm: string;
  settings: { name: string; value: string }[];
  params: IParamForm[];
  maxTrials: string;
  parallel: string;
  maxFailed: string;
}

/** Algorithms kale runs for one objective (Katib's names). */
export const SINGLE_ALGORITHMS = [
  'random',
  'grid',
  'tpe',
  'multivariate-tpe',
  'bayesianoptimization'
];
/** Algorithms kale runs for several objectives (not Katib's: local tuning only). */
export const MULTI_ALGORITHMS = ['nsga2', 'motpe', 'random', 'grid'];

/** Kale's defaults (`maxTrialCount` 12, `parallelTrialCount` 3, `maxFailedTrialCount` 3). */
export const DEFAULT_COUNTS = { maxTrials: '12', parallel: '3', maxFailed: '3' };

const asString = (v: unknown): string =>
  v === undefined || v === null ? '' : String(v);

function isNumeric(type: string): boolean {
  return type === 'int' || type === 'float';
}

/** The dialog's state: the notebook's saved metadata where it has one, else defaults. */
export function formFromMetadata(
  md: any,
  parameters: IPipelineParameter[],
  metrics: string[]
): ITuneForm {
  const saved: any[] = Array.isArray(md?.parameters) ? md.parameters : [];
  const params: IParamForm[] = parameters
    .filter(p => p.type !== 'bool')
    .map(p => {
      const s = saved.find(x => x?.name === p.name);
      const space = s?.feasibleSpace ?? {};
      const numeric = isNumeric(p.type);
      const hasList = Array.isArray(space.list);
      const d = Number(p.default);
      return {
        name: p.name,
        type: p.type,
        tuned: !!s,
        mode: hasList || !numeric ? 'list' : 'range',
        min: s && !hasList ? asString(space.min) : numeric ? defaultMin(p) : '',
        max: s && !hasList ? asString(space.max) : numeric ? defaultMax(p) : '',
        step: s && !hasList ? asString(space.step) : '',
        log:
          s && !hasList
            ? /^log/i.test(asString(space.distribution))
            : numeric && d > 0 && p.type === 'float',
        list: hasList
          ? space.list.map(asString).join(', ')
          : asString(p.default)
      };
    });
  const objectives: IObjectiveForm[] = [];
  if (Array.isArray(md?.objectives) && md.objectives.length > 0) {
    for (const o of md.objectives) {
      objectives.push({
        metric: asString(o?.objectiveMetricName),
        direction: o?.type === 'minimize' ? 'minimize' : 'maximize'
      });
    }
  } else if (md?.objective?.objectiveMetricName) {
    objectives.push({
      metric: String(md.objective.objectiveMetricName),
      direction: md.objective.type === 'minimize' ? 'minimize' : 'maximize'
    });
  } else if (metrics.length > 0) {
    objectives.push({ metric: metrics[0], direction: 'maximize' });
  }
  const constraints: IConstraintForm[] = (
    Array.isArray(md?.constraints) ? md.constraints : []
  )
    .map((c: unknown) => /^(.+?)\s*(<=|>=)\s*(.+)$/.exec(asString(c)))
    .filter((m: RegExpExecArray | null): m is RegExpExecArray => !!m)
    .map((m: RegExpExecArray) => ({
      metric: m[1].trim(),
      op: m[2] as '<=' | '>=',
      value: m[3].trim()
    }));
  const settings = Array.isArray(md?.algorithm?.algorithmSettings)
    ? md.algorithm.algorithmSettings.map((s: any) => ({
        name: asString(s?.name),
        value: asString(s?.value)
      }))
    : [];
  return {
    objectives,
    goal: asString(md?.objective?.goal),
    constraints,
    algorithm: asString(md?.algorithm?.algorithmName) || 'random',
    settings,
    params,
    maxTrials: asString(md?.maxTrialCount) || DEFAULT_COUNTS.maxTrials,
    parallel: asString(md?.parallelTrialCount) || DEFAULT_COUNTS.parallel,
    maxFailed: asString(md?.maxFailedTrialCount) || DEFAULT_COUNTS.maxFailed
  };
}

/** A first range around a numeric default: a decade each side (or 0..10). */
function defaultMin(p: IPipelineParameter): string {
  const d = Number(p.default);
  if (!(d > 0)) {
    return '0';
  }
  return p.type === 'int' ? String(Math.max(1, Math.floor(d / 10))) : fmt(d / 10);
}

function defaultMax(p: IPipelineParameter): string {
  const d = Number(p.default);
  if (!(d > 0)) {
    return '10';
  }
  return p.type === 'int' ? String(Math.ceil(d * 10)) : fmt(d * 10);
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(6)));
}

export interface IFormProblem {
  /** `objectives.0`, `params.C.min`, `maxTrials`, ... */
  field: string;
  message: string;
}

/** Everything wrong with the form, each problem on its field. */
export function checkForm(f: ITuneForm, metrics: string[]): IFormProblem[] {
  const problems: IFormProblem[] = [];
  const problem = (field: string, message: string) =>
    problems.push({ field, message });
  if (f.objectives.length === 0) {
    problem('objectives', 'pick the metric to optimise');
  }
  const seen = new Set<string>();
  f.objectives.forEach((o, i) => {
    if (!metrics.includes(o.metric)) {
      problem(
        `objectives.${i}`,
        metrics.length
          ? `\`${o.metric}\` is not a pipeline metric (${metrics.join(', ')})`
          : 'the notebook has no pipeline-metrics cell'
      );
    }
    if (seen.has(o.metric)) {
      problem(`objectives.${i}`, `\`${o.metric}\` is already an objective`);
    }
    seen.add(o.metric);
  });
  const multi = f.objectives.length > 1;
  if (f.goal.trim() && (multi || !isFinite(Number(f.goal)))) {
    problem(
      'goal',
      multi ? 'a goal applies to one objective' : 'the goal is a number'
    );
  }
  f.constraints.forEach((c, i) => {
    if (!metrics.includes(c.metric)) {
      problem(`constraints.${i}`, `\`${c.metric}\` is not a pipeline metric`);
    }
    if (!c.value.trim() || !isFinite(Number(c.value))) {
      problem(`constraints.${i}`, 'the bound is a number');
    }
  });
  const algorithms = multi ? MULTI_ALGORITHMS : SINGLE_ALGORITHMS;
  if (!algorithms.includes(f.algorithm)) {
    problem(
      'algorithm',
      `${multi ? 'with several objectives' : 'with one objective'}, pick one of ${algorithms.join(', ')}`
    );
  }
  const tuned = f.params.filter(p => p.tuned);
  if (tuned.length === 0) {
    problem('params', 'tick at least one parameter to tune');
  }
  for (const p of tuned) {
    const at = (k: string) => `params.${p.name}.${k}`;
    if (p.mode === 'list') {
      const values = splitList(p.list);
      if (values.length === 0) {
        problem(at('list'), 'list at least one value');
      }
      if (isNumeric(p.type)) {
        for (const v of values) {
          if (!isFinite(Number(v)) || (p.type === 'int' && !Number.isInteger(Number(v)))) {
            problem(at('list'), `\`${v}\` is not ${p.type === 'int' ? 'a whole number' : 'a number'}`);
          }
        }
      }
      continue;
    }
    const min = Number(p.min);
    const max = Number(p.max);
    if (p.min.trim() === '' || !isFinite(min)) {
      problem(at('min'), 'the minimum is a number');
    }
    if (p.max.trim() === '' || !isFinite(max)) {
      problem(at('max'), 'the maximum is a number');
    }
    if (isFinite(min) && isFinite(max) && min >= max) {
      problem(at('max'), 'the maximum must be above the minimum');
    }
    if (p.type === 'int' && (!Number.isInteger(min) || !Number.isInteger(max))) {
      problem(at('min'), 'an int parameter takes whole-number bounds');
    }
    if (p.step.trim()) {
      const step = Number(p.step);
      if (!(step > 0)) {
        problem(at('step'), 'the step is a number above 0');
      }
      if (p.log) {
        problem(
          at('step'),
          'a log scale has no step (list log-spaced values instead)'
        );
      }
    }
    if (p.log && !(min > 0)) {
      problem(at('min'), 'a log scale needs a minimum above 0');
    }
  }
  const count = (field: string, v: string, least: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < least) {
      problem(field, `a whole number, at least ${least}`);
    }
  };
  count('maxTrials', f.maxTrials, 1);
  count('parallel', f.parallel, 1);
  count('maxFailed', f.maxFailed, 0);
  return problems;
}

export function splitList(text: string): string[] {
  return text
    .split(',')
    .map(s => s.trim())
    .filter(s => s.length > 0);
}

/**
 * The `katib_metadata` object for a valid form, keys in the order Kale's dialog writes
 * them. `metrics` are the notebook's pipeline metrics: the ones that are not the
 * objective are recorded as `additionalMetricNames`, as Kale does.
 */
export function metadataFromForm(f: ITuneForm, metrics: string[]): any {
  const first = f.objectives[0];
  const objective: any = {
    type: first.direction,
    objectiveMetricName: first.metric
  };
  if (f.goal.trim() && f.objectives.length === 1) {
    objective.goal = Number(f.goal);
  }
  objective.additionalMetricNames = metrics.filter(m => m !== first.metric);
  const parameters = f.params
    .filter(p => p.tuned)
    .map(p => {
      if (p.mode === 'list') {
        return {
          name: p.name,
          parameterType: isNumeric(p.type) ? 'discrete' : 'categorical',
          feasibleSpace: { list: splitList(p.list) }
        };
      }
      const space: any = { min: p.min.trim(), max: p.max.trim() };
      if (p.step.trim()) {
        space.step = p.step.trim();
      }
      if (p.log) {
        space.distribution = 'logUniform';
      }
      return {
        name: p.name,
        parameterType: p.type === 'int' ? 'int' : 'double',
        feasibleSpace: space
      };
    });
  const md: any = {
    objective,
    algorithm: {
      algorithmName: f.algorithm,
      algorithmSettings: f.settings
        .filter(s => s.name.trim())
        .map(s => ({ name: s.name.trim(), value: s.value.trim() }))
    },
    parameters,
    maxTrialCount: Number(f.maxTrials),
    parallelTrialCount: Number(f.parallel),
    maxFailedTrialCount: Number(f.maxFailed)
  };
  if (f.objectives.length > 1) {
    md.objectives = f.objectives.map(o => ({
      type: o.direction,
      objectiveMetricName: o.metric
    }));
  }
  if (f.constraints.length > 0) {
    md.constraints = f.constraints.map(c => `${c.metric}${c.op}${c.value.trim()}`);
  }
  return md;
}
