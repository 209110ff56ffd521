/**
 * kale's located problems (`kale validate --json`): grouped per cell for the cell bars
 * and the editors' line marks, and the one-click fixes the hints describe.
 */

export interface IDiagnostic {
  severity: 'error' | 'warning';
  message: string;
  /** 1-based among all cells, as Jupyter numbers them. */
  cell?: number;
  /** 1-based inside the cell. */
  line?: number;
  hint?: string;
}

/** Diagnostics by 0-based cell index; those without a cell under -1. */
export function byCell(diags: IDiagnostic[]): Map<number, IDiagnostic[]> {
  const out = new Map<number, IDiagnostic[]>();
  for (const d of diags) {
    const key = d.cell ? d.cell - 1 : -1;
    const list = out.get(key) ?? [];
    list.push(d);
    out.set(key, list);
  }
  return out;
}

export interface IQuickFix {
  /** 0-based cell index. */
  cell: number;
  /** The tag to add. */
  tag: string;
}

/** A hint of the form "add the tag `prev:scale` to cell 10, ..." as a fix. */
export function quickFix(d: IDiagnostic): IQuickFix | null {
  const m = /add the tag `([^`]+)` to cell (\d+)/.exec(d.hint ?? '');
  return m ? { tag: m[1], cell: Number(m[2]) - 1 } : null;
}

export function summary(diags: IDiagnostic[]): string {
  const errors = diags.filter(d => d.severity === 'error').length;
  const warnings = diags.length - errors;
  const part = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  if (errors === 0 && warnings === 0) {
    return 'no problems';
  }
  return [errors ? part(errors, 'error') : '', warnings ? part(warnings, 'warning') : '']
    .filter(Boolean)
    .join(', ');
}
