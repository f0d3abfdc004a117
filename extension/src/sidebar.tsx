/**
 * The left sidebar: every job of the configured cluster and store, across
 * kernels and scripts, refreshed by a Lumino `Poll` (the interval from the
 * settings; on errors it backs off, up to a minute). Its state is the server's:
 * a reloaded page shows the same list. Nothing is asked while the sidebar is
 * closed (or the page is in the background). The filter (by status) is kept in the
 * state database, so it survives a reload too.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/apputils';
import { IStateDB } from '@jupyterlab/statedb';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import { IJob, listJobs } from './api';
import { formatAge, formatDriver, formatProgress, statusClass, STATUSES } from './format';

/** What a row's buttons ask for; the plugin turns them into commands. */
export interface IJobActions {
  open(jobId: string): void;
  cancel(jobId: string): void;
  close(jobId: string): void;
  clear(jobId: string): void;
  restart(jobId: string): void;
  attach(jobId: string): void;
}

/** The sidebar's model: the jobs, the filter, the poll and its errors. */
export class JobsModel {
  constructor(
    intervalMs: number,
    private _state: IStateDB | null = null
  ) {
    this._poll = new Poll({
      auto: true,
      factory: () => this._refresh(),
      frequency: { interval: intervalMs, backoff: true, max: 60_000 },
      name: 'twister-nb:jobs',
      // nothing is asked while the sidebar is closed or the page is in the background
      standby: () => !this._active || 'when-hidden'
    });
    if (this._state) {
      void this._state.fetch(STATE_KEY).then(value => {
        if (typeof value === 'string') {
          this._filter = value;
          this._changed.emit();
        }
      });
    }
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get jobs(): IJob[] {
    return this._jobs;
  }
  get error(): string {
    return this._error;
  }
  /** The status shown ('' for every job). */
  get filter(): string {
    return this._filter;
  }
  set filter(value: string) {
    this._filter = value;
    if (this._state) {
      void this._state.save(STATE_KEY, value);
    }
    this._changed.emit();
  }
  /** The jobs the filter lets through, newest first. */
  get shown(): IJob[] {
    const jobs = this._filter ? this._jobs.filter(j => j.status === this._filter) : this._jobs;
    return [...jobs].reverse();
  }

  /** Whether the list is on screen (the sidebar open): it is refreshed only then. */
  get active(): boolean {
    return this._active;
  }
  set active(value: boolean) {
    this._active = value;
    if (value) {
      void this._poll.refresh();
    }
  }

  /** A new refresh interval (from the settings). */
  setInterval(intervalMs: number): void {
    this._poll.frequency = { interval: intervalMs, backoff: true, max: 60_000 };
  }

  /** Refresh now (after an operation), not at the next tick. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
  }

  private async _refresh(): Promise<void> {
    try {
      this._jobs = await listJobs();
      this._error = '';
    } catch (error) {
      this._error = `cannot list jobs: ${(error as Error).message}`;
      this._changed.emit();
      throw error; // the poll backs off
    }
    this._changed.emit();
  }

  private _jobs: IJob[] = [];
  private _error = '';
  private _filter = '';
  private _active = false;
  private _poll: Poll;
  private _changed = new Signal<this, void>(this);
}

const STATE_KEY = 'twister-nb:sidebar-filter';

/** One job's row: what it is and its buttons. */
function JobRow(props: { job: IJob; actions: IJobActions }): JSX.Element {
  const { job, actions } = props;
  const progress = job.progress;
  const button = (label: string, title: string, onClick: () => void, disabled = false) => (
    <button
      className="jp-Button tnb-button"
      title={title}
      disabled={disabled}
      onClick={event => {
        event.stopPropagation();
        onClick();
      }}
    >
      {label}
    </button>
  );
  return (
    <li className="tnb-job" data-job-id={job.job_id} data-status={job.status}>
      <div className="tnb-job-head" onClick={() => actions.open(job.job_id)} title="Open its panel">
        <span className="tnb-job-name">{job.name || job.job_id}</span>
        <span className={statusClass(job.status)}>{job.status}</span>
      </div>
      <div className="tnb-job-id">
        <code>{job.job_id}</code>
      </div>
      {progress && (
        <div className="tnb-progress" title={`${progress.done} of ${progress.total} tasks`}>
          <div className="tnb-progress-bar" style={{ width: `${Math.round(progress.fraction * 100)}%` }} />
        </div>
      )}
      <div className="tnb-job-facts">
        <span className="tnb-job-progress">{formatProgress(job)}</span>
        <span className="tnb-job-checkpoints">
          {job.checkpoints} checkpoint{job.checkpoints === 1 ? '' : 's'}
        </span>
        <span className="tnb-job-age">{formatAge(job.age)}</span>
      </div>
      <div className="tnb-job-driver">driver: {formatDriver(job.driver)}</div>
      <div className="tnb-job-actions">
        {button('Open', 'Open the job in a panel', () => actions.open(job.job_id))}
        {button('Cancel', 'Cancel its running action', () => actions.cancel(job.job_id), !job.running)}
        {button('Close', 'End the job (frees its workers)', () => actions.close(job.job_id), !job.live)}
        {button('Clear', 'Delete its record and checkpoints', () => actions.clear(job.job_id), job.live)}
        {button('Restart', 'Run its program again', () => actions.restart(job.job_id), job.live)}
        {button('Attach', 'Attach in this notebook (%twister2 attach)', () => actions.attach(job.job_id))}
      </div>
    </li>
  );
}

/** The list with its filter. */
function JobsView(props: { model: JobsModel; actions: IJobActions }): JSX.Element {
  const { model, actions } = props;
  const shown = model.shown;
  return (
    <div className="tnb-sidebar-body">
      <div className="tnb-sidebar-toolbar">
        <label>
          Status{' '}
          <select
            className="tnb-filter"
            value={model.filter}
            onChange={event => (model.filter = event.target.value)}
          >
            <option value="">all</option>
            {STATUSES.map(s => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <button className="jp-Button tnb-button" title="Refresh now" onClick={() => void model.refresh()}>
          Refresh
        </button>
      </div>
      {model.error && <div className="tnb-error">{model.error}</div>}
      {shown.length === 0 && !model.error && (
        <div className="tnb-empty">{model.filter ? `No ${model.filter} jobs.` : 'No jobs yet.'}</div>
      )}
      <ul className="tnb-jobs">
        {shown.map(job => (
          <JobRow key={job.job_id} job={job} actions={actions} />
        ))}
      </ul>
    </div>
  );
}

/** The sidebar widget. */
export class JobsSidebar extends ReactWidget {
  constructor(
    readonly model: JobsModel,
    private _actions: IJobActions
  ) {
    super();
    this.id = 'twister-nb-jobs';
    this.addClass('tnb-sidebar');
  }

  render(): JSX.Element {
    return (
      <div className="tnb-sidebar-inner">
        <header className="tnb-sidebar-title">Twister2 jobs</header>
        <UseSignal signal={this.model.changed}>
          {() => <JobsView model={this.model} actions={this._actions} />}
        </UseSignal>
      </div>
    );
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.active = true;
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.active = false;
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
