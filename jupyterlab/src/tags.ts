/**
 * Kale's cell-tag language, as kale and Kubeflow's Kale read it from a cell's
 * `metadata.tags`: one annotation per cell, read from and written back to the tags.
 * Tags this editor does not edit (labels, annotations, secrets, report, other tools'
 * tags) are kept as they are.
 *
 * No JupyterLab imports here: this is the logic the unit tests exercise.
 */

/** What a code cell is to the pipeline. */
export type CellKind =
  | 'none'
  | 'imports'
  | 'functions'
  | 'pipeline-parameters'
  | 'pipeline-metrics'
  | 'skip'
  | 'step';

export const SPECIAL_KINDS: CellKind[] = [
  'imports',
  'functions',
  'pipeline-parameters',
  'pipeline-metrics',
  'skip'
];

export const KIND_LABELS: Record<CellKind, string> = {
  none: 'Untagged',
  imports: 'Imports',
  functions: 'Functions',
  'pipeline-parameters': 'Pipeline parameters',
  'pipeline-metrics': 'Pipeline metrics',
  skip: 'Skip cell',
  step: 'Pipeline step'
};

export interface IAnnotation {
  kind: CellKind;
  /** The step name (`step:NAME`); empty for other kinds. */
  step: string;
  /** Parent steps (`prev:NAME`, one tag each). */
  prev: string[];
  /** `limit:RESOURCE:VALUE` tags, in order. */
  limits: [string, string][];
  /** `image:REF`, or empty. */
  image: string;
  /** `cache:enabled|disabled`, or empty for the default. */
  cache: '' | 'enabled' | 'disabled';
  /** Every other tag, kept verbatim (labels, annotations, secrets, other tools'). */
  other: string[];
}

export function emptyAnnotation(): IAnnotation {
  return {
    kind: 'none',
    step: '',
    prev: [],
    limits: [],
    image: '',
    cache: '',
    other: []
  };
}

const LIMIT_RE = /^limit:([A-Za-z0-9_\-./]+):([_a-zA-Z0-9.]+)$/;
export const STEP_NAME_RE = /^[_a-z][_a-z0-9]*$/;

/** kale refuses these as step names (Kale turns `step:skip` into a skipped cell). */
export const RESERVED_STEP_NAMES = [
  'skip',
  'imports',
  'functions',
  'pipeline_parameters',
  'pipeline_metrics',
  'step',
  'block',
  'prev'
];

/** Reads a cell's tags. The first special tag decides the kind, as in Kale. */
export function parseTags(tags: readonly unknown[] | undefined): IAnnotation {
  const a = emptyAnnotation();
  if (!Array.isArray(tags)) {
    return a;
  }
  for (const raw of tags) {
    if (typeof raw !== 'string') {
      continue;
    }
    const tag = raw;
    if ((SPECIAL_KINDS as string[]).includes(tag)) {
      if (a.kind === 'none' || a.kind === 'step') {
        a.kind = tag as CellKind;
      }
      continue;
    }
    const legacy = /^block:(imports|functions|skip)$/.exec(tag);
    if (legacy) {
      if (a.kind === 'none' || a.kind === 'step') {
        a.kind = legacy[1] as CellKind;
      }
      continue;
    }
    const step = /^(?:step|block):(.*)$/.exec(tag);
    if (step && !step[1]) {
      // `step:` with no name continues the block above, like an untagged cell (Kale's
      // panel writes it so); kept while the cell stays so.
      a.other.push(tag);
      continue;
    }
    if (step) {
      if (a.kind === 'none') {
        a.kind = 'step';
      }
      if (!a.step) {
        a.step = step[1];
      }
      continue;
    }
    if (tag.startsWith('prev:')) {
      // `prev:a:b` is the 2019 form of two parents.
      for (const p of tag.slice(5).split(':')) {
        if (p && !a.prev.includes(p)) {
          a.prev.push(p);
        }
      }
      continue;
    }
    const limit = LIMIT_RE.exec(tag);
    if (limit) {
      a.limits.push([limit[1], limit[2]]);
      continue;
    }
    if (tag.startsWith('image:') && tag.length > 6) {
      a.image = tag.slice(6);
      continue;
    }
    if (tag === 'cache:enabled' || tag === 'cache:disabled') {
      a.cache = tag.slice(6) as 'enabled' | 'disabled';
      continue;
    }
    a.other.push(tag);
  }
  return a;
}

/**
 * The tags for an annotation, in the order a hand-tagged Kale notebook has them:
 * `step:`, its `prev:` tags, limits, image, cache, then the kept tags.
 */
export function toTags(a: IAnnotation): string[] {
  const tags: string[] = [];
  if (a.kind === 'step') {
    tags.push(`step:${a.step}`);
    for (const p of a.prev) {
      tags.push(`prev:${p}`);
    }
    for (const [resource, value] of a.limits) {
      tags.push(`limit:${resource}:${value}`);
    }
    if (a.image) {
      tags.push(`image:${a.image}`);
    }
    if (a.cache) {
      tags.push(`cache:${a.cache}`);
    }
  } else if (a.kind !== 'none') {
    tags.push(a.kind);
  }
  // Step-only tags (labels, annotations, secrets, report) are meaningless on other
  // cells and Kale refuses them there; other tools' tags stay.
  const stepOnly = /^(label|annotation|secret|report):/;
  for (const t of a.other) {
    if (/^(step|block):$/.test(t) && a.kind !== 'none') {
      continue;
    }
    if (a.kind === 'step' || !stepOnly.test(t)) {
      tags.push(t);
    }
  }
  return tags;
}

export interface INameCheck {
  ok: boolean;
  message?: string;
  /** A name that passes the rule, when the typed one does not. */
  suggestion?: string;
}

/** Kale's step-name rule, checked as the user types. */
export function checkStepName(name: string): INameCheck {
  if (!name) {
    return { ok: false, message: 'a step needs a name' };
  }
  if (RESERVED_STEP_NAMES.includes(name)) {
    return {
      ok: false,
      message: `\`${name}\` is reserved by Kale's tags`,
      suggestion: `${name}_step`
    };
  }
  if (STEP_NAME_RE.test(name)) {
    return { ok: true };
  }
  let why: string;
  if (/^[0-9]/.test(name)) {
    why = 'a step name cannot start with a digit';
  } else if (/[A-Z]/.test(name)) {
    why = 'a step name is lowercase';
  } else if (name.includes('-')) {
    why = 'a step name cannot contain `-` (Kale reads it as an unknown tag)';
  } else {
    why = 'a step name has only lowercase letters, digits and `_`';
  }
  return { ok: false, message: why, suggestion: suggestStepName(name) };
}

export function suggestStepName(name: string): string {
  let s = name
    .trim()
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!s) {
    s = 'step';
  }
  if (/^[0-9]/.test(s)) {
    s = `_${s}`;
  }
  if (RESERVED_STEP_NAMES.includes(s)) {
    s = `${s}_step`;
  }
  return s;
}

/** `limit:` resources the editor offers; any other is kept as typed. */
export const LIMIT_RESOURCES = ['nvidia.com/gpu', 'amd.com/gpu', 'cpu', 'memory'];
const LIMIT_VALUE_RE = /^[_a-zA-Z0-9.]+$/;

export function checkLimit(resource: string, value: string): string | null {
  if (!/^[A-Za-z0-9_\-./]+$/.test(resource)) {
    return 'a resource is letters, digits and `_-./`';
  }
  if (!LIMIT_VALUE_RE.test(value)) {
    return 'a value is letters, digits, `_` and `.` (e.g. 1, 500m, 4Gi)';
  }
  if (/gpu$/.test(resource) && !/^[0-9]+$/.test(value)) {
    return 'GPUs are a whole number';
  }
  return null;
}
