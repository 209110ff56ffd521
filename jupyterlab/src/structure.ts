/**
 * How a notebook's cells group into Kale blocks, from their tags alone: which step (or
 * special block) each code cell belongs to, which cells continue the one above, the
 * steps defined above a cell (what "depends on" may pick), and a colour per step.
 * kale's own analysis (validate/inspect) is the truth for data flow; this is what the
 * cell bars show while the user types.
 */

import { CellKind, IAnnotation, parseTags } from './tags';

export interface ICellInfo {
  cellType: string;
  tags: readonly unknown[] | undefined;
}

export interface IBlock {
  /** The cell's own annotation. */
  annotation: IAnnotation;
  /** The block this code cell runs in: its own, or the one it continues. */
  kind: CellKind;
  /** The step this cell belongs to ('' for special blocks and loose cells). */
  step: string;
  /** An untagged cell (or a repeated step name) adding to a block started above. */
  continues: boolean;
  /** Untagged code before the first tagged cell: not part of the pipeline. */
  dropped: boolean;
  /** Steps whose first cell is above this one, in notebook order. */
  stepsAbove: string[];
  /** Colour slot of the step (index into the palette), or -1. */
  color: number;
}

/** One entry per cell (markdown and raw cells get `kind: 'none'`, never continue). */
export function blocks(cells: readonly ICellInfo[]): IBlock[] {
  const out: IBlock[] = [];
  const steps: string[] = [];
  let current: { kind: CellKind; step: string } | null = null;
  for (const cell of cells) {
    const annotation = parseTags(cell.tags);
    const stepsAbove = steps.slice();
    if (cell.cellType !== 'code') {
      out.push({
        annotation,
        kind: 'none',
        step: '',
        continues: false,
        dropped: false,
        stepsAbove,
        color: -1
      });
      continue;
    }
    let kind: CellKind = annotation.kind;
    let step = '';
    let continues = false;
    let dropped = false;
    if (kind === 'step') {
      step = annotation.step;
      continues = steps.includes(step);
      if (!continues) {
        steps.push(step);
      }
      current = { kind, step };
    } else if (kind === 'skip') {
      // A skipped cell is left out and does not become the block later cells continue.
    } else if (kind === 'none') {
      if (current) {
        kind = current.kind;
        step = current.step;
        continues = true;
      } else {
        dropped = true;
      }
    } else {
      current = { kind, step: '' };
    }
    out.push({
      annotation,
      kind,
      step,
      continues,
      dropped,
      stepsAbove,
      color: step ? steps.indexOf(step) : -1
    });
  }
  return out;
}

/** Every step name, in the order their first cells appear. */
export function stepNames(cells: readonly ICellInfo[]): string[] {
  const names: string[] = [];
  for (const b of blocks(cells)) {
    if (b.step && !names.includes(b.step)) {
      names.push(b.step);
    }
  }
  return names;
}

/**
 * A palette that reads on light and dark themes; a step keeps its colour while steps
 * are added below it.
 */
export const STEP_COLORS = [
  '#1f77b4',
  '#e6550d',
  '#31a354',
  '#9467bd',
  '#d62728',
  '#17becf',
  '#bcbd22',
  '#e377c2',
  '#8c564b',
  '#636363'
];

export function stepColor(slot: number): string {
  if (slot < 0) {
    return 'transparent';
  }
  return STEP_COLORS[slot % STEP_COLORS.length];
}
