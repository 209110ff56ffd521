import { readFileSync } from 'fs';
import { join } from 'path';
import { describe, expect, it } from 'vitest';

import { checkForm, formFromMetadata, metadataFromForm } from '../src/katib';

const digits = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'examples', 'digits.ipynb'), 'utf8')
);
const katib = digits.metadata.kubeflow_notebook.katib_metadata;
const params = [
  { name: 'C', type: 'float', default: 1.0 },
  { name: 'gamma', type: 'float', default: 0.001 },
  { name: 'kernel', type: 'str', default: 'rbf' }
];
const metrics = ['accuracy', 'f1'];

describe('katib_metadata', () => {
  it("round-trips the hand-written example exactly, in Kale's key order", () => {
    const form = formFromMetadata(katib, params, metrics);
    expect(checkForm(form, metrics)).toEqual([]);
    expect(form.params.map(p => [p.name, p.tuned, p.mode, p.log])).toEqual([
      ['C', true, 'range', true],
      ['gamma', true, 'range', true],
      ['kernel', false, 'list', false]
    ]);
    const md = metadataFromForm(form, metrics);
    expect(md).toEqual(katib);
    expect(JSON.stringify(md)).toBe(JSON.stringify(katib));
  });

  it('builds the example from an empty notebook the way the dialog is filled in', () => {
    const form = formFromMetadata(undefined, params, metrics);
    expect(form.objectives).toEqual([{ metric: 'accuracy', direction: 'maximize' }]);
    expect([form.maxTrials, form.parallel, form.maxFailed]).toEqual(['12', '3', '3']);
    // Not tuned until ticked.
    expect(checkForm(form, metrics).map(p => p.field)).toEqual(['params']);
    const C = form.params[0];
    Object.assign(C, { tuned: true, min: '0.1', max: '100', log: true });
    Object.assign(form.params[1], { tuned: true, min: '0.0001', max: '0.1', log: true });
    form.algorithm = 'tpe';
    form.settings = [{ name: 'random_state', value: '7' }];
    Object.assign(form, { maxTrials: '20', parallel: '2', maxFailed: '3' });
    expect(checkForm(form, metrics)).toEqual([]);
    expect(metadataFromForm(form, metrics)).toEqual(katib);
  });

  it('writes lists, steps, several objectives, constraints and a goal', () => {
    const form = formFromMetadata(undefined, params, metrics);
    Object.assign(form.params[0], { tuned: true, mode: 'list', list: '0.1, 1,10' });
    Object.assign(form.params[1], {
      tuned: true,
      min: '0.001',
      max: '0.01',
      step: '0.001',
      log: false
    });
    Object.assign(form.params[2], { tuned: true, list: 'rbf,linear' });
    form.goal = '0.99';
    let md = metadataFromForm(form, metrics);
    expect(md.objective).toEqual({
      type: 'maximize',
      objectiveMetricName: 'accuracy',
      goal: 0.99,
      additionalMetricNames: ['f1']
    });
    expect(md.parameters).toEqual([
      { name: 'C', parameterType: 'discrete', feasibleSpace: { list: ['0.1', '1', '10'] } },
      {
        name: 'gamma',
        parameterType: 'double',
        feasibleSpace: { min: '0.001', max: '0.01', step: '0.001' }
      },
      { name: 'kernel', parameterType: 'categorical', feasibleSpace: { list: ['rbf', 'linear'] } }
    ]);
    expect(md.objectives).toBeUndefined();

    form.goal = '';
    form.objectives.push({ metric: 'f1', direction: 'minimize' });
    form.constraints.push({ metric: 'accuracy', op: '>=', value: '0.9' });
    form.algorithm = 'nsga2';
    expect(checkForm(form, metrics)).toEqual([]);
    md = metadataFromForm(form, metrics);
    expect(md.objectives).toEqual([
      { type: 'maximize', objectiveMetricName: 'accuracy' },
      { type: 'minimize', objectiveMetricName: 'f1' }
    ]);
    expect(md.constraints).toEqual(['accuracy>=0.9']);
    // And back.
    const again = formFromMetadata(md, params, metrics);
    expect(again.objectives).toEqual(form.objectives);
    expect(again.constraints).toEqual(form.constraints);
    expect(again.params[0].list).toBe('0.1, 1, 10');
  });

  it('says what is wrong, on the field', () => {
    const form = formFromMetadata(undefined, params, metrics);
    Object.assign(form.params[0], { tuned: true, min: '0', max: '1', log: true });
    Object.assign(form.params[1], { tuned: true, min: '5', max: '1', log: false });
    form.objectives = [{ metric: 'loss', direction: 'minimize' }];
    form.algorithm = 'nsga2';
    form.maxTrials = '0';
    const fields = checkForm(form, metrics).map(p => p.field);
    expect(fields).toEqual([
      'objectives.0',
      'algorithm',
      'params.C.min',
      'params.gamma.max',
      'maxTrials'
    ]);
  });
});
