/**
 * Ties the panel, the notebooks and the main-area views together: one session per open
 * notebook, the current one following the focused notebook.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { IInfo, KaleApi } from './api';
import { ExperimentsView } from './experiments';
import { LiveView } from './liveview';
import { NotebookSession } from './session';
import { openTuneDialog } from './tunedialog';

export class Controller {
  readonly api: KaleApi;
  info: IInfo | null = null;
  infoError: string | null = null;
  private _sessions = new Map<NotebookPanel, NotebookSession>();
  private _changed = new Signal<this, void>(this);
  private _live = new Map<NotebookSession, MainAreaWidget<LiveView>>();
  private _experiments = new Map<NotebookSession, MainAreaWidget<ExperimentsView>>();

  constructor(
    readonly app: JupyterFrontEnd,
    readonly tracker: INotebookTracker
  ) {
    this.api = new KaleApi(app.serviceManager.serverSettings);
    tracker.widgetAdded.connect((_, panel) => this.attach(panel));
    tracker.forEach(panel => this.attach(panel));
    tracker.currentChanged.connect(() => this._changed.emit());
    void this.loadInfo();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get current(): NotebookSession | null {
    const panel = this.tracker.currentWidget;
    return panel ? this._sessions.get(panel) ?? null : null;
  }

  private attach(panel: NotebookPanel): void {
    if (this._sessions.has(panel)) {
      return;
    }
    const session = new NotebookSession(panel, this.api);
    this._sessions.set(panel, session);
    session.changed.connect(() => {
      if (session === this.current) {
        this._changed.emit();
      }
    });
    panel.disposed.connect(() => {
      this._sessions.delete(panel);
      this._changed.emit();
    });
    void session.loadExperiments();
  }

  async loadInfo(): Promise<void> {
    try {
      this.info = await this.api.info();
      this.infoError = null;
    } catch (e) {
      this.infoError = String(e instanceof Error ? e.message : e);
    }
    this._changed.emit();
  }

  /** Opens a file of the server's tree (a debug notebook, a compiled YAML). */
  async open(path: string): Promise<void> {
    await this.app.commands.execute('docmanager:open', { path });
  }

  async tuneDialog(session: NotebookSession): Promise<void> {
    const start = await openTuneDialog(session);
    if (start) {
      this.liveView(session);
      await session.startTune();
    }
  }

  /** The tune's live view, in the main area beside the notebook. */
  liveView(session: NotebookSession): void {
    let widget = this._live.get(session);
    if (!widget || widget.isDisposed) {
      const content = new LiveView(this, session);
      widget = new MainAreaWidget({ content });
      widget.id = `kale-live-${Math.random().toString(36).slice(2)}`;
      widget.title.label = `Tune · ${session.path.split('/').pop()}`;
      widget.title.closable = true;
      widget.addClass('kale-main');
      this._live.set(session, widget);
      this.app.shell.add(widget, 'main', { mode: 'split-right', ref: session.panel.id });
    }
    this.app.shell.activateById(widget.id);
  }

  experiments(session: NotebookSession, compare?: string[]): void {
    let widget = this._experiments.get(session);
    if (!widget || widget.isDisposed) {
      const content = new ExperimentsView(this, session);
      widget = new MainAreaWidget({ content });
      widget.id = `kale-experiments-${Math.random().toString(36).slice(2)}`;
      widget.title.label = `Experiments · ${session.path.split('/').pop()}`;
      widget.title.closable = true;
      widget.addClass('kale-main');
      this._experiments.set(session, widget);
      this.app.shell.add(widget, 'main', { mode: 'split-right', ref: session.panel.id });
    }
    if (compare) {
      void widget.content.compare(compare);
    }
    this.app.shell.activateById(widget.id);
  }

  /** `kale debug` of a run's step (default: the one that failed), opened as a notebook. */
  async debug(session: NotebookSession, run: string, step?: string): Promise<string> {
    const out = await this.api.debug(session.path, run, step);
    await this.open(out.notebook);
    return out.notebook;
  }
}
