/**
 * kale in JupyterLab (and Notebook 7): Kale's tags edited on each cell, kale's
 * validation as you type, and a panel to run, tune and compile the notebook.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { Controller } from './controller';
import { KalePanel } from './panel';

const kaleIcon = new LabIcon({
  name: 'kale-jupyterlab:kale',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M12 2c-3 3-5 6.5-5 10.5 0 3 1.6 5.7 4 7.1V22h2v-2.4c2.4-1.4 4-4.1 4-7.1C17 8.5 15 5 12 2zm0 3.2c1.8 2.2 3 4.7 3 7.3 0 2-1.1 3.8-2.7 4.8V11h-.6v6.3C10.1 16.3 9 14.5 9 12.5c0-2.6 1.2-5.1 3-7.3z"/></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'kale-jupyterlab:plugin',
  description: "Annotate cells with Kale's tags, validate live, run and tune a notebook with kale.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    const controller = new Controller(app, tracker);
    const panel = new KalePanel(controller);
    panel.title.icon = kaleIcon;
    panel.title.caption = 'Kale: pipeline, run and tune';
    app.shell.add(panel, 'left', { rank: 900 });

    const commands: [string, string, () => void | Promise<void>][] = [
      ['kale:open-panel', 'Kale: Open the Panel', () => app.shell.activateById(panel.id)],
      [
        'kale:run',
        'Kale: Run the Notebook',
        () => {
          app.shell.activateById(panel.id);
          return controller.current?.startRun();
        }
      ],
      [
        'kale:tune',
        'Kale: Tune the Notebook…',
        () => {
          const s = controller.current;
          return s ? controller.tuneDialog(s) : undefined;
        }
      ],
      ['kale:validate', 'Kale: Validate Now', () => controller.current?.validate()]
    ];
    for (const [id, label, execute] of commands) {
      app.commands.addCommand(id, { label, execute });
      palette?.addItem({ command: id, category: 'Kale' });
    }
  }
};

export default plugin;
