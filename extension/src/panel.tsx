/**
 * A job's main-area panel: its live dashboard and graph.
 *
 * The panel follows the job's events endpoint (a long-poll from its cursor);
 * each batch of events redraws it from the job's detail, whose dashboard the
 * server folds with the notebook's own `JobProgress` (the cell dashboard's state
 * and HTML), so the panel and a cell show the same thing. The graph is the job's
 * stages in order, each box coloured by its state. A job that is not live is
 * shown as its record says and looked at again every few seconds (it may be
 * restarted). The panel keeps nothing the server does not have: the layout
 * restorer reopens it by job ID after a page reload.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/apputils';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import { ApiError, getEvents, getJob, IEvent, IJobDetail, IStage } from './api';
import { IJobActions } from './sidebar';
import { formatAge, formatDriver, formatProgress, statusClass } from './format';

/** Seconds a long-poll for events waits on the server. */
const LONG_POLL_S = 10;
/** How often a job that is not live (or an API that failed) is asked again, in ms. */
const IDLE_MS = 3000;
/** The least time between two reads of the detail (events are coalesced meanwhile), in ms. */
const MIN_GAP_MS = 500;
/** Events kept for the panel's event list. */
const MAX_EVENTS = 200;

/** The panel's model: the job's detail and recent events, kept current. */
export class JobPanelModel {
  constructor(readonly jobId: string) {
    void this._follow();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get detail(): IJobDetail | null {
    return this._detail;
  }
  get events(): IEvent[] {
    return this._events;
  }
  get error(): string {
    return this._error;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Read the job's detail again now (after an operation). */
  async reload(): Promise<void> {
    try {
      this._detail = await getJob(this.jobId);
      this._error = '';
    } catch (error) {
      this._error = (error as Error).message;
      if (error instanceof ApiError && error.status === 404) {
        this._detail = null;
      }
    }
    this._changed.emit();
  }

  dispose(): void {
    this._disposed = true;
  }

  private async _follow(): Promise<void> {
    await this.reload();
    let cursor = this._detail ? this._detail.cursor : 0;
    while (!this._disposed) {
      if (!this._detail || !this._detail.live) {
        await sleep(IDLE_MS);
        if (!this._disposed) {
          await this.reload();
          cursor = this._detail ? this._detail.cursor : 0;
        }
        continue;
      }
      try {
        const answer = await getEvents(this.jobId, cursor, LONG_POLL_S);
        if (this._disposed) {
          break;
        }
        cursor = answer.cursor;
        if (answer.events.length) {
          this._events = [...this._events, ...answer.events].slice(-MAX_EVENTS);
        }
        if (answer.events.length || !answer.live) {
          await this.reload();
          await sleep(MIN_GAP_MS); // a busy job's events come in batches, not one read each
        }
      } catch (error) {
        this._error = (error as Error).message;
        this._changed.emit();
        await sleep(IDLE_MS);
      }
    }
  }

  private _detail: IJobDetail | null = null;
  private _events: IEvent[] = [];
  private _error = '';
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** The names a stage shows: the user's variable names where known. */
function stageNames(stage: IStage): string {
  const names = stage.names && stage.names.length ? stage.names : stage.tsets;
  return names.filter((n, i) => i === 0 || n !== names[i - 1]).join(' → ') || stage.label;
}

/** The job's graph: its stages in order, coloured by state. */
function Graph(props: { stages: IStage[] }): JSX.Element | null {
  if (!props.stages.length) {
    return null;
  }
  return (
    <div className="tnb-graph" aria-label="job graph">
      {props.stages.map((stage, i) => (
        <React.Fragment key={`${stage.action}-${stage.index}`}>
          {i > 0 && <span className="tnb-graph-arrow">→</span>}
          <div
            className={`tnb-graph-node tnb-node-${stage.state}`}
            data-state={stage.state}
            title={`${stage.done}/${stage.tasks} tasks · ${stage.records_in} in · ${stage.records_out} out`}
          >
            <div className="tnb-graph-caption">
              #{stage.action} {stage.action_kind}
            </div>
            <div className="tnb-graph-names">{stageNames(stage)}</div>
            <div className="tnb-graph-tasks">
              {stage.done}/{stage.tasks} · {stage.state}
            </div>
          </div>
        </React.Fragment>
      ))}
    </div>
  );
}

/** One event as a line of the panel's event list. */
function eventLine(event: IEvent): string {
  switch (event.kind) {
    case 'action':
      return `action #${event.action} ${event.action_kind ?? ''} ${event.state}`;
    case 'task':
      return `task: stage ${event.stage} partition ${event.partition} on worker ${event.worker} (${event.records_out} out)`;
    case 'output':
      return (event.lines || []).join('\n');
    case 'checkpoint':
      return `checkpoint ${event.label || event.tset_id} version ${event.version}`;
    case 'error':
      return `error: ${String(event.message).split('\n')[0]}`;
    default:
      return event.kind;
  }
}

function JobView(props: { model: JobPanelModel; actions: IJobActions }): JSX.Element {
  const { model, actions } = props;
  const job = model.detail;
  if (!job) {
    return (
      <div className="tnb-panel-body">
        <h2>{model.jobId}</h2>
        <div className="tnb-error">{model.error || 'Loading…'}</div>
      </div>
    );
  }
  const button = (label: string, onClick: () => void, disabled = false) => (
    <button className="jp-Button tnb-button" disabled={disabled} onClick={onClick}>
      {label}
    </button>
  );
  return (
    <div className="tnb-panel-body" data-job-id={job.job_id} data-status={job.status}>
      <div className="tnb-panel-header">
        <span className="tnb-job-name">{job.name}</span> <code>{job.job_id}</code>{' '}
        <span className={statusClass(job.status)}>{job.status}</span>
      </div>
      <div className="tnb-panel-facts">
        <span>{formatProgress(job)}</span>
        <span>
          {job.checkpoints} checkpoint{job.checkpoints === 1 ? '' : 's'}
        </span>
        <span>{job.workers} workers</span>
        <span>driver: {formatDriver(job.driver)}</span>
        <span>age {formatAge(job.age)}</span>
      </div>
      <div className="tnb-job-actions">
        {button('Cancel', () => actions.cancel(job.job_id), !job.running)}
        {button('Close', () => actions.close(job.job_id), !job.live)}
        {button('Clear', () => actions.clear(job.job_id), job.live)}
        {button('Restart', () => actions.restart(job.job_id), job.live || !job.restartable)}
        {button('Attach in this notebook', () => actions.attach(job.job_id))}
      </div>
      {model.error && <div className="tnb-error">{model.error}</div>}
      {job.errors.map((e, i) => (
        <div key={i} className="tnb-error">
          {e}
        </div>
      ))}
      <Graph stages={job.stages} />
      {job.dashboard_html ? (
        <div className="tnb-dashboard" dangerouslySetInnerHTML={{ __html: job.dashboard_html }} />
      ) : (
        <div className="tnb-empty">Not live: no JobMaster runs this job (its record is shown).</div>
      )}
      {job.checkpoint_list.length > 0 && (
        <details className="tnb-checkpoints" open>
          <summary>checkpoints ({job.checkpoint_list.length})</summary>
          <ul>
            {job.checkpoint_list.map(c => (
              <li key={c.tset_id}>
                <code>{c.tset_id}</code> {c.label ?? ''} {c.version !== undefined ? `version ${c.version}` : ''}
              </li>
            ))}
          </ul>
        </details>
      )}
      {model.events.length > 0 && (
        <details className="tnb-events">
          <summary>events ({model.events.length})</summary>
          <pre>{model.events.map(e => `${e.seq} ${eventLine(e)}`).join('\n')}</pre>
        </details>
      )}
    </div>
  );
}

/** The panel widget (the content of a main-area widget). */
export class JobPanel extends ReactWidget {
  constructor(
    readonly model: JobPanelModel,
    private _actions: IJobActions
  ) {
    super();
    this.addClass('tnb-panel');
  }

  get jobId(): string {
    return this.model.jobId;
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <JobView model={this.model} actions={this._actions} />}
      </UseSignal>
    );
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
