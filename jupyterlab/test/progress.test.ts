import { describe, expect, it } from 'vitest';

import {
  bestTrial,
  failureLocation,
  foldRun,
  foldTune,
  history,
  newRun,
  newTune
} from '../src/progress';

describe('run view', () => {
  it('follows a run from its events', () => {
    const events = [
      { event: 'run_started', steps: [{ name: 'load', cells: [6] }, { name: 'train', cells: [10] }] },
      { event: 'step_started', step: 'load' },
      { event: 'step_cache_note', step: 'load', note: 'data.txt changed' },
      { event: 'step_output', step: 'load', stream: 'stdout', line: 'hello' },
      { event: 'step_finished', step: 'load', status: 'succeeded', seconds: 1.5 },
      { event: 'step_started', step: 'train' },
      { event: 'step_finished', step: 'train', status: 'failed', seconds: 0.2 },
      {
        event: 'run_finished',
        run_id: 'r1',
        status: 'failed',
        seconds: 2,
        metrics: {},
        steps: [
          { name: 'load', status: 'succeeded', seconds: 1.5, cache_note: 'data.txt changed' },
          { name: 'train', status: 'failed', seconds: 0.2, cache_note: null }
        ],
        error: { step: 'train', type: 'ValueError', message: 'bad', cell: 10, line: 2, code: 'x' }
      }
    ];
    let v = newRun();
    const seen: string[] = [];
    for (const e of events) {
      v = foldRun(v, e);
      seen.push(v.steps.map(s => s.status).join(','));
    }
    expect(seen[1]).toBe('running,pending');
    expect(v.status).toBe('failed');
    expect(v.steps[0]).toMatchObject({
      status: 'succeeded',
      cacheNote: 'data.txt changed',
      output: ['hello'],
      cells: [6]
    });
    expect(v.error).toMatchObject({ step: 'train', cell: 10, line: 2 });
  });
});

describe('tune view', () => {
  it('keeps trials as they finish, the best so far and the history', () => {
    let v = newTune();
    const events: any[] = [
      { event: 'tune_started', experiment: 'e', objectives: [{ name: 'loss', direction: 'minimize' }], algorithm: 'tpe', max_trials: 3 },
      { event: 'trial_started', trial: 0, params: { x: 1 } },
      { event: 'trial_started', trial: 1, params: { x: 2 } },
      { event: 'trial_finished', trial: 1, status: 'succeeded', value: 0.5, values: [0.5], feasible: true, params: { x: 2 } },
      { event: 'progress', max_trials: 3, succeeded: 1, failed: 0, running: [0], best: { trial: 1, value: 0.5 }, cache_hits: 1, cache_misses: 1, elapsed: 1 },
      { event: 'trial_finished', trial: 0, status: 'succeeded', value: 0.7, values: [0.7], feasible: true, params: { x: 1 } },
      { event: 'trial_started', trial: 2, params: { x: 3 } },
      { event: 'trial_finished', trial: 2, status: 'failed', value: null, values: [], params: { x: 3 }, error: 'step `score` failed at cell 3, line 2: ValueError: too big' },
      { event: 'tune_finished', status: 'succeeded', reason: 'max trials reached', best: { trial: 1, value: 0.5 } }
    ];
    for (const e of events) {
      v = foldTune(v, e);
    }
    expect(v.finished.map(t => t.trial)).toEqual([1, 0, 2]);
    expect(v.running).toEqual([]);
    expect(bestTrial(v)?.params).toEqual({ x: 2 });
    expect(history(v)).toEqual([
      { trial: 0, value: 0.7, best: 0.7 },
      { trial: 1, value: 0.5, best: 0.5 }
    ]);
    expect(failureLocation(v.finished[2].error)).toEqual({ step: 'score', cell: 3, line: 2 });
    expect(v.status).toBe('succeeded');
  });
});
