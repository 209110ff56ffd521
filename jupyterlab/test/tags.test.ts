import { readFileSync } from 'fs';
import { join } from 'path';
import { describe, expect, it } from 'vitest';

import {
  checkLimit,
  checkStepName,
  emptyAnnotation,
  parseTags,
  suggestStepName,
  toTags
} from '../src/tags';

const root = join(__dirname, '..', '..');

function codeCellTags(path: string): string[][] {
  const nb = JSON.parse(readFileSync(path, 'utf8'));
  return nb.cells
    .filter((c: any) => c.cell_type === 'code')
    .map((c: any) => c.metadata?.tags ?? []);
}

describe('tags', () => {
  it('round-trips every cell of the hand-tagged example and of Kale notebooks', () => {
    const notebooks = [
      join(root, 'examples/digits.ipynb'),
      join(root, 'examples/digits_tradeoff.ipynb'),
      join(
        root,
        '../shared/corpus/kale-tests/pypi_kubeflow-kale-2.3.0/examples/base/candies_sharing.ipynb'
      ),
      join(
        root,
        '../shared/corpus/kale-tests/pypi_kubeflow-kale-2.3.0/examples/titanic-ml-dataset/titanic_dataset_ml.ipynb'
      )
    ];
    let cells = 0;
    for (const path of notebooks) {
      for (const tags of codeCellTags(path)) {
        const again = toTags(parseTags(tags));
        if (path.includes('/examples/digits')) {
          // kale's examples: the same tags in the same order.
          expect(again, `${path}: ${tags}`).toEqual(tags);
        } else {
          // Kale's panel sometimes writes `prev:` before `step:`; the set is the same.
          expect([...again].sort(), `${path}: ${tags}`).toEqual([...tags].sort());
        }
        cells += 1;
      }
    }
    expect(cells).toBeGreaterThan(20);
  });

  it('reads a step with its parents, limits, image and cache, and keeps other tags', () => {
    const a = parseTags([
      'step:train',
      'prev:load',
      'prev:scale',
      'limit:nvidia.com/gpu:2',
      'label:team:ml',
      'image:python:3.11-slim',
      'cache:disabled'
    ]);
    expect(a).toEqual({
      kind: 'step',
      step: 'train',
      prev: ['load', 'scale'],
      limits: [['nvidia.com/gpu', '2']],
      image: 'python:3.11-slim',
      cache: 'disabled',
      other: ['label:team:ml']
    });
    expect(toTags(a)).toEqual([
      'step:train',
      'prev:load',
      'prev:scale',
      'limit:nvidia.com/gpu:2',
      'image:python:3.11-slim',
      'cache:disabled',
      'label:team:ml'
    ]);
  });

  it('lets the first special tag win, as Kale does, and drops step-only tags then', () => {
    const a = parseTags(['imports', 'prev:x', 'label:a:b', 'parameters']);
    expect(a.kind).toBe('imports');
    expect(toTags(a)).toEqual(['imports', 'parameters']);
  });

  it('reads legacy forms: block:NAME, prev:a:b, block:imports', () => {
    expect(parseTags(['block:load']).step).toBe('load');
    expect(toTags(parseTags(['block:load', 'prev:a:b']))).toEqual([
      'step:load',
      'prev:a',
      'prev:b'
    ]);
    expect(parseTags(['block:imports']).kind).toBe('imports');
    // An empty step name continues the block above, like an untagged cell.
    expect(parseTags(['step:']).kind).toBe('none');
    const named = parseTags(['step:']);
    named.kind = 'step';
    named.step = 'x';
    expect(toTags(named)).toEqual(['step:x']);
  });

  it('writes a changed kind without the old one', () => {
    const a = parseTags(['step:train', 'prev:load']);
    a.kind = 'skip';
    expect(toTags(a)).toEqual(['skip']);
    expect(toTags(emptyAnnotation())).toEqual([]);
  });
});

describe('step names', () => {
  it("follows Kale's rule and suggests a name that passes", () => {
    expect(checkStepName('load_data').ok).toBe(true);
    expect(checkStepName('_tmp2').ok).toBe(true);
    const hyphen = checkStepName('load-data');
    expect(hyphen.ok).toBe(false);
    expect(hyphen.message).toContain('`-`');
    expect(hyphen.suggestion).toBe('load_data');
    expect(checkStepName('LoadData').suggestion).toBe('load_data');
    expect(checkStepName('2nd').suggestion).toBe('_2nd');
    expect(checkStepName('skip').suggestion).toBe('skip_step');
    expect(checkStepName('').ok).toBe(false);
    for (const bad of ['load-data', 'LoadData', '2nd', 'a b', 'é']) {
      expect(checkStepName(suggestStepName(bad)).ok, bad).toBe(true);
    }
  });

  it('checks limit values', () => {
    expect(checkLimit('nvidia.com/gpu', '1')).toBeNull();
    expect(checkLimit('memory', '4Gi')).toBeNull();
    expect(checkLimit('nvidia.com/gpu', '0.5')).toContain('whole');
    expect(checkLimit('cpu', '1 core')).not.toBeNull();
  });
});
