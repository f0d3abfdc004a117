/**
 * Dashboards whose kernel is gone: their last state, not "model not found".
 *
 * A `%%twister2` dashboard is an ipywidgets widget while its run is live; when
 * the run ends, the kernel replaces its output with a static copy (a display
 * update by ID). JupyterLab's Kernel > Restart drops the old kernel's messages
 * before the kernel hears of it, so a dashboard live at a restart keeps its
 * widget output, and once the notebook is saved and opened again it shows
 * `Error displaying widget: model not found` (JupyterLab saves no widget state
 * by default). So, in the page:
 *
 * - when a notebook's kernel restarts, goes away or is changed, each live
 *   dashboard's widget output becomes the HTML the page shows now (its last
 *   state), its status no longer `running`, with a line saying the kernel is
 *   gone (the words of `render_header` in `twister_nb/notebook/progress.py`);
 * - when a notebook opens or gets another kernel, a dashboard's widget output
 *   whose model that kernel does not have (a notebook saved while a run was
 *   live, opened after its kernel went) becomes that line. (ipywidgets shows
 *   `model not found` for it, or `Loading widget...` for good when the kernel
 *   has not imported ipywidgets.)
 *
 * A dashboard output is known by its plain text, `JobDashboard(...)` (the
 * widget's repr).
 */
import { NotebookPanel, INotebookTracker } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';
const GONE_LINE =
  'the kernel that ran this cell is gone; this is its last state (%twister2 attach JOB_ID ' +
  'follows the job)';
const LOST_LINE =
  'the kernel that ran this cell is gone, and the dashboard\u2019s last state was not saved ' +
  '(%twister2 attach JOB_ID follows the job)';

interface IOutputView {
  /** The output area's model. */
  model: {
    length: number;
    get(index: number): { data: Record<string, unknown>; toJSON(): Record<string, unknown> };
    set(index: number, value: Record<string, unknown>): void;
  };
  /** The output area's children, one per output. */
  widgets: ReadonlyArray<{ node: HTMLElement }>;
}

function isDashboard(data: Record<string, unknown>): boolean {
  const text = data['text/plain'];
  return WIDGET_MIME in data && typeof text === 'string' && text.startsWith('JobDashboard(');
}

function escape(text: string): string {
  const div = document.createElement('div');
  div.textContent = text;
  return div.innerHTML;
}

/** The shown dashboard as static HTML: no buttons, not running, the kernel gone. */
export function lastState(view: HTMLElement): string {
  const copy = view.cloneNode(true) as HTMLElement;
  copy.querySelectorAll('button').forEach(b => b.remove());
  const header = copy.querySelector('.twister-nb-header');
  if (header) {
    header.querySelectorAll('span').forEach(span => {
      if (/^(running|starting)$/.test((span.textContent || '').trim())) {
        span.textContent = 'unknown';
        span.style.color = '#757575';
      }
    });
    const gone = document.createElement('span');
    gone.className = 'twister-nb-kernel-gone';
    gone.style.color = '#757575';
    gone.textContent = ` \u00b7 ${GONE_LINE}`;
    const log = header.querySelector('.twister-nb-log');
    header.insertBefore(gone, log);
  }
  return copy.outerHTML;
}

function replace(view: IOutputView, index: number, html: string, text: string): void {
  view.model.set(index, {
    output_type: 'display_data',
    data: { 'text/html': html, 'text/plain': text },
    metadata: { twister_nb: { kernel_gone: true } }
  });
}

function cellOutputs(panel: NotebookPanel): IOutputView[] {
  const views: IOutputView[] = [];
  for (const cell of panel.content.widgets) {
    const outputArea = (cell as unknown as { outputArea?: IOutputView }).outputArea;
    if (outputArea && outputArea.model && outputArea.widgets) {
      views.push(outputArea);
    }
  }
  return views;
}

/** Every live dashboard of the notebook becomes its last state (its kernel is going). */
export function freezeDashboards(panel: NotebookPanel): number {
  let frozen = 0;
  for (const view of cellOutputs(panel)) {
    for (let i = 0; i < view.model.length; i++) {
      const output = view.model.get(i);
      const child = view.widgets[i];
      if (!isDashboard(output.data) || !child) {
        continue;
      }
      const shown = child.node.querySelector<HTMLElement>('.twister-nb-dashboard');
      const text = String(output.data['text/plain']).replace(/status='[^']*'/, "status='unknown'");
      if (shown) {
        replace(view, i, lastState(shown), text);
      } else {
        replace(view, i, `<div class="twister-nb-kernel-gone">${escape(LOST_LINE)}</div>`, text);
      }
      frozen++;
    }
  }
  return frozen;
}

/**
 * Dashboards whose widget model the notebook's kernel does not have (a notebook
 * saved while a run was live, opened after its kernel went) become the line
 * that says the kernel is gone. A widget model's ID is its comm's ID, and the
 * kernel lists its widget comms (`comm_info_request`); a model ID is never
 * reused, so one missing now never comes.
 */
export async function replaceLost(panel: NotebookPanel): Promise<number> {
  await panel.context.ready;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    return 0;
  }
  const reply = await kernel.requestCommInfo({ target_name: 'jupyter.widget' });
  if (reply.content.status !== 'ok') {
    return 0;
  }
  const live = new Set(Object.keys(reply.content.comms));
  let replaced = 0;
  for (const view of cellOutputs(panel)) {
    for (let i = 0; i < view.model.length; i++) {
      const data = view.model.get(i).data;
      const widget = data[WIDGET_MIME] as { model_id?: string } | undefined;
      if (isDashboard(data) && widget && widget.model_id && !live.has(widget.model_id)) {
        replace(view, i, `<div class="twister-nb-kernel-gone">${escape(LOST_LINE)}</div>`,
          String(data['text/plain']).replace(/status='[^']*'/, "status='unknown'"));
        replaced++;
      }
    }
  }
  return replaced;
}

const LEAVING: ReadonlyArray<Kernel.Status> = ['restarting', 'autorestarting', 'dead'];

/** Watch every notebook: freeze its dashboards when its kernel leaves, replace lost ones. */
export function watchNotebooks(notebooks: INotebookTracker): void {
  notebooks.widgetAdded.connect((_, panel) => {
    const session = panel.sessionContext;
    session.statusChanged.connect((_, status) => {
      if (LEAVING.includes(status)) {
        freezeDashboards(panel);
      }
    });
    session.kernelChanged.connect((_, change) => {
      if (change.oldValue && change.newValue !== change.oldValue) {
        freezeDashboards(panel);
      }
      if (change.newValue) {
        void replaceLost(panel).catch(() => undefined);
      }
    });
    // a notebook opened, or given another kernel: dashboards that kernel lacks are gone
    void replaceLost(panel).catch(() => undefined);
  });
}
