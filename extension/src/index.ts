/**
 * The twister_nb JupyterLab extension: the jobs sidebar, job panels, and the
 * commands behind their buttons; and, in notebooks, dashboards whose kernel is
 * gone shown as their last state (`orphans.ts`).
 *
 * Everything it shows comes from the server extension's REST API
 * (`twister_nb/server`); it keeps no job state of its own. The layout restorer
 * brings back the sidebar and every open job panel after a page reload, and the
 * refresh interval is a setting (Settings > Twister2 jobs).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  showDialog,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStateDB } from '@jupyterlab/statedb';
import { LabIcon } from '@jupyterlab/ui-components';

import { operate, Operation } from './api';
import { watchNotebooks } from './orphans';
import { JobPanel, JobPanelModel } from './panel';
import { IJobActions, JobsModel, JobsSidebar } from './sidebar';

const PLUGIN_ID = 'twister-nb:plugin';

/** The command IDs (palette and buttons). */
export namespace CommandIDs {
  export const open = 'twister-nb:open-job';
  export const cancel = 'twister-nb:cancel-job';
  export const close = 'twister-nb:close-job';
  export const clear = 'twister-nb:clear-job';
  export const restart = 'twister-nb:restart-job';
  export const attach = 'twister-nb:attach-job';
  export const refresh = 'twister-nb:refresh-jobs';
}

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><circle cx="5" cy="6" r="3"/><circle cx="5" cy="18" r="3"/>
<circle cx="19" cy="12" r="3"/><path d="M7.5 7.2l9 3.6-.7 1.8-9-3.6zM7.5 16.8l9-3.6-.7-1.8-9 3.6z"/></g></svg>`;

export const jobsIcon = new LabIcon({ name: 'twister-nb:jobs', svgstr: ICON_SVG });

/** The code "attach in this notebook" runs. */
export function attachCode(jobId: string): string {
  return `%load_ext twister_nb\n%twister2 attach ${jobId}`;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Twister2 jobs sidebar: every job, its live dashboard, and its operations.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ISettingRegistry, IStateDB, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    restorer: ILayoutRestorer | null,
    settings: ISettingRegistry | null,
    state: IStateDB | null,
    palette: ICommandPalette | null
  ) => {
    const { commands, shell } = app;
    const model = new JobsModel(2000, state);
    const tracker = new WidgetTracker<MainAreaWidget<JobPanel>>({ namespace: 'twister-nb-job' });

    const run = async (jobId: string, operation: Operation): Promise<void> => {
      try {
        await operate(jobId, operation);
      } catch (error) {
        await showErrorMessage(`Cannot ${operation} ${jobId}`, (error as Error).message);
      }
      await model.refresh();
      tracker.forEach(w => {
        if (w.content.jobId === jobId) {
          void w.content.model.reload();
        }
      });
    };

    const actions: IJobActions = {
      open: jobId => void commands.execute(CommandIDs.open, { jobId }),
      cancel: jobId => void commands.execute(CommandIDs.cancel, { jobId }),
      close: jobId => void commands.execute(CommandIDs.close, { jobId }),
      clear: jobId => void commands.execute(CommandIDs.clear, { jobId }),
      restart: jobId => void commands.execute(CommandIDs.restart, { jobId }),
      attach: jobId => void commands.execute(CommandIDs.attach, { jobId })
    };

    commands.addCommand(CommandIDs.open, {
      label: 'Open Twister2 Job',
      execute: args => {
        const jobId = String(args.jobId);
        const open = tracker.find(w => w.content.jobId === jobId);
        if (open) {
          shell.activateById(open.id);
          return open;
        }
        const content = new JobPanel(new JobPanelModel(jobId), actions);
        const widget = new MainAreaWidget({ content });
        widget.id = `twister-nb-job-${jobId}`;
        widget.title.label = `Job ${jobId}`;
        widget.title.icon = jobsIcon;
        widget.title.closable = true;
        void tracker.add(widget);
        shell.add(widget, 'main');
        shell.activateById(widget.id);
        return widget;
      }
    });
    commands.addCommand(CommandIDs.cancel, {
      label: 'Cancel Twister2 Job',
      execute: args => run(String(args.jobId), 'cancel')
    });
    commands.addCommand(CommandIDs.close, {
      label: 'Close Twister2 Job',
      execute: args => run(String(args.jobId), 'close')
    });
    commands.addCommand(CommandIDs.restart, {
      label: 'Restart Twister2 Job',
      execute: args => run(String(args.jobId), 'restart')
    });
    commands.addCommand(CommandIDs.clear, {
      label: 'Clear Twister2 Job',
      execute: async args => {
        const jobId = String(args.jobId);
        const answer = await showDialog({
          title: 'Clear job',
          body: `Delete the record and every checkpoint of ${jobId}? This cannot be undone.`,
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Clear' })]
        });
        if (answer.button.accept) {
          await run(jobId, 'clear');
        }
      }
    });
    commands.addCommand(CommandIDs.attach, {
      label: 'Attach Twister2 Job in This Notebook',
      execute: async args => {
        const jobId = String(args.jobId);
        const panel = notebooks.currentWidget;
        if (!panel) {
          await showErrorMessage('No notebook', `Open a notebook to attach ${jobId} in it.`);
          return;
        }
        shell.activateById(panel.id);
        const notebook = panel.content;
        if (notebook.widgets.length) {
          notebook.activeCellIndex = notebook.widgets.length - 1;
          NotebookActions.insertBelow(notebook);
        }
        NotebookActions.changeCellType(notebook, 'code');
        notebook.activeCell!.model.sharedModel.setSource(attachCode(jobId));
        await NotebookActions.run(notebook, panel.sessionContext);
      }
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Twister2 Jobs',
      execute: () => model.refresh()
    });

    // a dashboard whose kernel is gone shows its last state, not "model not found"
    watchNotebooks(notebooks);

    const sidebar = new JobsSidebar(model, actions);
    sidebar.title.icon = jobsIcon;
    sidebar.title.caption = 'Twister2 jobs';
    shell.add(sidebar, 'left', { rank: 250 });

    if (restorer) {
      restorer.add(sidebar, sidebar.id);
      void restorer.restore(tracker, {
        command: CommandIDs.open,
        args: widget => ({ jobId: widget.content.jobId }),
        name: widget => widget.content.jobId
      });
    }
    if (settings) {
      void settings.load(PLUGIN_ID).then(loaded => {
        const apply = () => model.setInterval(Number(loaded.get('refreshInterval').composite));
        apply();
        loaded.changed.connect(apply);
      });
    }
    if (palette) {
      for (const command of [CommandIDs.refresh]) {
        palette.addItem({ command, category: 'Twister2' });
      }
    }
  }
};

export default plugin;
