/**
 * kale's view of one open notebook: the cell bars, live validation of the unsaved
 * model, and the runs and tunes started from the panel.
 */

import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';
import { PanelLayout } from '@lumino/widgets';

import { follow, IJobPoll, IValidation, KaleApi, KaleError } from './api';
import { CellBar } from './cellbar';
import { byCell, IDiagnostic } from './diagnostics';
import { markLines } from './marks';
import {
  foldRun,
  foldTune,
  IRunView,
  ITuneView,
  newRun,
  newTune
} from './progress';
import { blocks, IBlock, stepColor } from './structure';
import { IAnnotation, toTags } from './tags';

/** Edits settle for this long before kale validates them. */
export const VALIDATE_DELAY_MS = 400;

export interface IJobState<V> {
  id: string | null;
  view: V;
  log: string[];
  rc: number | null;
  /** The server could not start or follow it. */
  error: string | null;
}

export class NotebookSession {
  readonly panel: NotebookPanel;
  readonly api: KaleApi;
  validation: IValidation | null = null;
  validating = false;
  validationError: string | null = null;
  run: IJobState<IRunView> | null = null;
  tune: IJobState<ITuneView> | null = null;
  /** Experiments of this notebook's store (`kale experiments list --json`). */
  experiments: any[] | null = null;

  private _changed = new Signal<this, void>(this);
  private _timer: number | undefined;
  private _bars = new Map<Cell, CellBar>();
  private _disposed = false;
  private _generation = 0;
  private _watched = new WeakSet<ICellModel>();

  constructor(panel: NotebookPanel, api: KaleApi) {
    this.panel = panel;
    this.api = api;
    panel.disposed.connect(() => this.dispose());
    void panel.context.ready.then(() => {
      const model = panel.content.model;
      if (!model) {
        return;
      }
      model.contentChanged.connect(() => this.scheduleValidation());
      model.metadataChanged.connect(() => {
        this.scheduleValidation();
        this.emit();
      });
      model.cells.changed.connect(() => {
        this.watchCells();
        // New cell widgets are made after the list changes.
        setTimeout(() => this.refreshBars(), 0);
        this.scheduleValidation();
      });
      this.watchCells();
      this.refreshBars();
      void this.validate();
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get path(): string {
    return this.panel.context.path;
  }

  emit(): void {
    if (!this._disposed) {
      this._changed.emit();
    }
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._timer);
    for (const bar of this._bars.values()) {
      bar.dispose();
    }
    this._bars.clear();
    Signal.clearData(this);
  }

  // ---- cells ---------------------------------------------------------------

  /** Every cell's block, computed from the model's tags. */
  blocks(): IBlock[] {
    const model = this.panel.content.model;
    if (!model) {
      return [];
    }
    const cells = [];
    for (let i = 0; i < model.cells.length; i++) {
      const c = model.cells.get(i);
      cells.push({ cellType: c.type, tags: c.getMetadata('tags') });
    }
    return blocks(cells);
  }

  /** Writes a cell's annotation as its tags (an empty list removes the key). */
  annotate(index: number, annotation: IAnnotation): void {
    const cell = this.panel.content.model?.cells.get(index);
    if (!cell) {
      return;
    }
    const tags = toTags(annotation);
    const before = cell.getMetadata('tags');
    if (JSON.stringify(before ?? []) === JSON.stringify(tags)) {
      return;
    }
    if (tags.length === 0) {
      cell.deleteMetadata('tags');
    } else {
      cell.setMetadata('tags', tags);
    }
  }

  /** Renames a step: its first cell's tag and every `prev:` naming it. */
  renameStep(index: number, annotation: IAnnotation, from: string): void {
    const model = this.panel.content.model;
    const all = this.blocks();
    const unique = from && all.filter(b => b.annotation.kind === 'step' && b.annotation.step === from).length === 1;
    const taken = all.some(b => b.step === annotation.step);
    this.annotate(index, annotation);
    if (!model || !unique || taken) {
      return;
    }
    all.forEach((b, i) => {
      if (i !== index && b.annotation.prev.includes(from)) {
        const a = { ...b.annotation, prev: b.annotation.prev.map(p => (p === from ? annotation.step : p)) };
        this.annotate(i, a);
      }
    });
  }

  diagnosticsFor(index: number): IDiagnostic[] {
    if (!this.validation) {
      return [];
    }
    return byCell(this.validation.diagnostics).get(index) ?? [];
  }

  private watchCells(): void {
    const model = this.panel.content.model;
    if (!model) {
      return;
    }
    for (let i = 0; i < model.cells.length; i++) {
      const c = model.cells.get(i);
      if (!this._watched.has(c)) {
        this._watched.add(c);
        c.metadataChanged.connect(() => {
          this.refreshBars();
          this.scheduleValidation();
        });
      }
    }
  }

  /** Puts a bar on every code cell and brings every bar up to date. */
  refreshBars(): void {
    if (this._disposed) {
      return;
    }
    const widgets = this.panel.content.widgets;
    const all = this.blocks();
    const seen = new Set<Cell>();
    widgets.forEach((cell, index) => {
      seen.add(cell);
      let bar = this._bars.get(cell);
      if (cell.model.type !== 'code') {
        if (bar) {
          bar.dispose();
          this._bars.delete(cell);
        }
        return;
      }
      if (!bar) {
        bar = new CellBar(this, cell);
        this._bars.set(cell, bar);
        const created = bar;
        void cell.ready.then(() => {
          if (!created.isDisposed) {
            (cell.layout as PanelLayout).insertWidget(1, created);
            created.update();
          }
        });
      }
      bar.setState(index, all[index]);
      this.styleCell(cell, all[index]);
      markLines(
        cell.editor,
        this.diagnosticsFor(index)
          .filter(d => d.line)
          .map(d => ({ line: d.line as number, severity: d.severity, message: d.message + (d.hint ? `\nhint: ${d.hint}` : '') }))
      );
    });
    for (const [cell, bar] of this._bars) {
      if (!seen.has(cell)) {
        bar.dispose();
        this._bars.delete(cell);
      }
    }
  }

  private styleCell(cell: Cell, block: IBlock | undefined): void {
    const node = cell.node;
    node.classList.remove('kale-step-cell', 'kale-continues', 'kale-special-cell', 'kale-dropped', 'kale-skip');
    node.style.removeProperty('--kale-step-color');
    if (!block || cell.model.type !== 'code') {
      return;
    }
    if (block.step) {
      node.classList.add('kale-step-cell');
      node.style.setProperty('--kale-step-color', stepColor(block.color));
    } else if (block.kind === 'skip') {
      node.classList.add('kale-skip');
    } else if (block.kind !== 'none') {
      node.classList.add('kale-special-cell');
    } else if (block.dropped) {
      node.classList.add('kale-dropped');
    }
    if (block.continues) {
      node.classList.add('kale-continues');
    }
  }

  /** Selects the cell (0-based) and puts the cursor on its line (1-based). */
  async jumpTo(index: number, line?: number): Promise<void> {
    const notebook = this.panel.content;
    const cell = notebook.widgets[index];
    if (!cell) {
      return;
    }
    notebook.activeCellIndex = index;
    await notebook.scrollToCell(cell);
    if (line) {
      await cell.ready;
      if (cell.editor) {
        notebook.mode = 'edit';
        cell.editor.setCursorPosition({ line: line - 1, column: 0 });
        cell.editor.focus();
      }
    }
  }

  // ---- validation ----------------------------------------------------------

  scheduleValidation(): void {
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => void this.validate(), VALIDATE_DELAY_MS);
  }

  async validate(): Promise<void> {
    const model = this.panel.content.model;
    if (!model || this._disposed) {
      return;
    }
    const generation = ++this._generation;
    this.validating = true;
    this.emit();
    try {
      const doc = await this.api.validate(this.path, model.toJSON());
      if (generation !== this._generation) {
        return; // A later edit's validation is on its way.
      }
      this.validation = doc;
      this.validationError = null;
    } catch (e) {
      if (generation !== this._generation) {
        return;
      }
      this.validationError = e instanceof KaleError ? e.message : String(e);
    } finally {
      if (generation === this._generation) {
        this.validating = false;
        this.refreshBars();
        this.emit();
      }
    }
  }

  // ---- notebook metadata ---------------------------------------------------

  /** `kubeflow_notebook`, as saved (or an empty object). */
  kubeflow(): any {
    return (this.panel.content.model?.getMetadata('kubeflow_notebook') as any) ?? {};
  }

  /**
   * Sets fields of `kubeflow_notebook`, creating it with the keys Kale's panel writes
   * (pipeline and experiment name, description, base image, volumes) when missing.
   */
  setKubeflow(fields: Record<string, unknown>): void {
    const model = this.panel.content.model;
    if (!model) {
      return;
    }
    const current = this.kubeflow();
    const stem = this.path.split('/').pop()!.replace(/\.ipynb$/, '');
    const slug = stem.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'pipeline';
    const next: any = {
      pipeline_name: current.pipeline_name ?? slug,
      experiment_name: current.experiment_name ?? slug,
      pipeline_description: current.pipeline_description ?? '',
      base_image: current.base_image ?? '',
      volumes: current.volumes ?? [],
      ...current,
      ...fields
    };
    model.setMetadata('kubeflow_notebook', next);
  }

  // ---- runs and tunes ------------------------------------------------------

  async startRun(params: Record<string, string> = {}, paramsFrom?: string): Promise<void> {
    await this.panel.context.save();
    this.run = { id: null, view: newRun(), log: [], rc: null, error: null };
    this.emit();
    try {
      const job = await this.api.startJob({
        kind: 'run',
        path: this.path,
        params,
        params_from: paramsFrom
      });
      this.run.id = job.id;
      await this.followJob(job.id, 'run');
    } catch (e) {
      this.run.error = String(e instanceof Error ? e.message : e);
      this.emit();
    }
  }

  async startTune(opts: { name?: string; resume?: boolean } = {}): Promise<void> {
    await this.panel.context.save();
    const view = newTune();
    if (opts.resume && opts.name) {
      // The trials of the earlier sessions, so the history and the best stay whole.
      try {
        const doc = await this.api.experiment(this.path, opts.name);
        view.finished = (doc.trials ?? [])
          .filter((t: any) => t.status !== 'interrupted' && t.status !== 'running')
          .map((t: any) => ({
            trial: t.number,
            status: t.status,
            value: t.value ?? null,
            values: t.values ?? [],
            feasible: (t.constraints ?? []).every((c: number | null) => c !== null && c <= 0),
            params: t.params ?? {},
            metrics: t.metrics ?? {},
            seconds: t.seconds ?? null,
            error: t.error ?? null
          }));
      } catch {
        // The resumed session's own events still tell its story.
      }
    }
    this.tune = { id: null, view, log: [], rc: null, error: null };
    this.emit();
    try {
      const job = await this.api.startJob({ kind: 'tune', path: this.path, ...opts });
      this.tune.id = job.id;
      await this.followJob(job.id, 'tune');
    } catch (e) {
      this.tune.error = String(e instanceof Error ? e.message : e);
      this.emit();
    }
  }

  async stop(kind: 'run' | 'tune'): Promise<void> {
    const job = kind === 'run' ? this.run : this.tune;
    if (job?.id) {
      await this.api.stop(job.id);
    }
  }

  private async followJob(id: string, kind: 'run' | 'tune'): Promise<IJobPoll> {
    const state = kind === 'run' ? this.run! : this.tune!;
    const last = await follow(
      this.api,
      id,
      (events, poll) => {
        if (kind === 'run') {
          for (const e of events) {
            (state as IJobState<IRunView>).view = foldRun((state as IJobState<IRunView>).view, e);
          }
        } else {
          for (const e of events) {
            (state as IJobState<ITuneView>).view = foldTune((state as IJobState<ITuneView>).view, e);
          }
        }
        state.log = poll.log;
        state.rc = poll.rc;
        this.emit();
      },
      () => this._disposed
    );
    state.rc = last.rc;
    // A run that never started (a notebook error, exit 2) says why in its log.
    if (kind === 'run' && (state as IJobState<IRunView>).view.steps.length === 0 && last.rc !== 0) {
      state.error = last.log.filter(l => l.startsWith('error') || l.startsWith('  hint')).join('\n') || `kale exited with status ${last.rc}`;
    }
    if (kind === 'tune' && !(state as IJobState<ITuneView>).view.experiment && last.rc !== 0) {
      state.error = last.log.filter(l => l.startsWith('error') || l.startsWith('  hint')).join('\n') || `kale exited with status ${last.rc}`;
    }
    this.emit();
    if (kind === 'tune') {
      void this.loadExperiments();
    }
    return last;
  }

  async loadExperiments(): Promise<void> {
    try {
      const doc = await this.api.experiments(this.path);
      this.experiments = Array.isArray(doc) ? doc : doc.experiments ?? [];
    } catch {
      this.experiments = [];
    }
    this.emit();
  }
}
