import { describe, expect, it } from 'vitest';

import { layout } from '../src/dag';

describe('dag layout', () => {
  it('puts each step below its parents and labels edges with variables', () => {
    const l = layout([
      { name: 'load', depends_on: [], input_sources: {} },
      { name: 'scale', depends_on: ['load'], input_sources: { X_train: 'load' } },
      { name: 'other', depends_on: ['load'], input_sources: {} },
      {
        name: 'train',
        depends_on: ['scale'],
        input_sources: { y_train: 'load', X_train_scaled: 'scale' }
      }
    ]);
    const node = (n: string) => l.nodes.find(x => x.name === n)!;
    expect([node('load').layer, node('scale').layer, node('train').layer]).toEqual([0, 1, 2]);
    expect(node('other').layer).toBe(1);
    for (const e of l.edges) {
      expect(node(e.to).y).toBeGreaterThan(node(e.from).y);
    }
    const e = (from: string, to: string) => l.edges.find(x => x.from === from && x.to === to);
    expect(e('load', 'train')?.variables).toEqual(['y_train']);
    expect(e('scale', 'train')?.variables).toEqual(['X_train_scaled']);
    expect(e('load', 'other')?.variables).toEqual([]);
    // Siblings do not overlap.
    expect(Math.abs(node('scale').x - node('other').x)).toBeGreaterThanOrEqual(120);
  });
});
