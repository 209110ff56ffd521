import { describe, expect, it } from 'vitest';

import { byCell, quickFix, summary } from '../src/diagnostics';

describe('diagnostics', () => {
  const missing = {
    severity: 'error' as const,
    message:
      'step `train` reads `X_train_scaled`, which step `scale` defines (cell 8), but `scale` is not an ancestor of `train`',
    cell: 10,
    line: 2,
    hint: 'add the tag `prev:scale` to cell 10, the first cell of step `train`'
  };

  it('groups by cell and turns a missing-parent hint into a fix', () => {
    const grouped = byCell([missing, { severity: 'warning', message: 'no cell' }]);
    expect(grouped.get(9)).toEqual([missing]);
    expect(grouped.get(-1)?.length).toBe(1);
    expect(quickFix(missing)).toEqual({ cell: 9, tag: 'prev:scale' });
    expect(quickFix({ severity: 'error', message: 'x', hint: 'rename it' })).toBeNull();
  });

  it('summarises', () => {
    expect(summary([])).toBe('no problems');
    expect(summary([missing, missing, { severity: 'warning', message: 'w' }])).toBe(
      '2 errors, 1 warning'
    );
  });
});
