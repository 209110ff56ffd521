import { describe, expect, it } from 'vitest';

import { blocks, stepColor, stepNames } from '../src/structure';

const code = (tags: string[]) => ({ cellType: 'code', tags });
const md = { cellType: 'markdown', tags: undefined };

describe('blocks', () => {
  it('groups cells the way kale does', () => {
    const cells = [
      code([]), // before any tag: not in the pipeline
      code(['imports']),
      md,
      code(['step:load']),
      code([]), // continues load
      code(['skip']),
      code([]), // still continues load: a skip cell is not a block
      code(['step:train', 'prev:load']),
      code(['step:load']), // a later cell of load
      code(['pipeline-metrics'])
    ];
    const b = blocks(cells);
    expect(b[0].dropped).toBe(true);
    expect(b[1].kind).toBe('imports');
    expect(b[2].kind).toBe('none');
    expect([b[3].step, b[3].continues, b[3].color]).toEqual(['load', false, 0]);
    expect([b[4].step, b[4].continues]).toEqual(['load', true]);
    expect(b[5].kind).toBe('skip');
    expect([b[6].step, b[6].continues]).toEqual(['load', true]);
    expect([b[7].step, b[7].color, b[7].stepsAbove]).toEqual(['train', 1, ['load']]);
    expect([b[8].step, b[8].continues, b[8].color]).toEqual(['load', true, 0]);
    expect(b[9].kind).toBe('pipeline-metrics');
    expect(b[9].stepsAbove).toEqual(['load', 'train']);
    expect(stepNames(cells)).toEqual(['load', 'train']);
  });

  it('gives each step its own colour', () => {
    expect(stepColor(0)).not.toBe(stepColor(1));
    expect(stepColor(-1)).toBe('transparent');
  });
});
