/**
 * How the sidebar and the job panel word a job: its age, its driver, its
 * status's colour class. One place, so the list and the panel say the same.
 */
import { IDriver, IJob } from './api';

/** The statuses the filter offers (a job's status is one of these, or another word). */
export const STATUSES = [
  'running',
  'idle',
  'finished',
  'failed',
  'cancelled',
  'stopped'
];

/** `42 s`, `3 min`, `2 h`, `5 d`. */
export function formatAge(seconds: number | null): string {
  if (seconds === null || seconds === undefined) {
    return '';
  }
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h`;
  }
  return `${Math.floor(seconds / 86400)} d`;
}

/** `kernel: analysis.ipynb`, `process 1234 on host`, or `none`. */
export function formatDriver(driver: IDriver | null): string {
  if (!driver) {
    return 'none';
  }
  if (driver.kind === 'kernel') {
    return `kernel: ${driver.path || driver.kernel_name || driver.kernel_id}`;
  }
  return `process ${driver.pid} on ${driver.host}`;
}

/** `3/8 tasks` of the running action, or the last action's state, or ''. */
export function formatProgress(job: IJob): string {
  if (job.progress) {
    return `${job.progress.done}/${job.progress.total} tasks`;
  }
  if (job.last_action) {
    return `#${job.last_action.action} ${job.last_action.kind} ${job.last_action.state ?? ''}`;
  }
  return '';
}

/** The CSS class of a status's colour. */
export function statusClass(status: string): string {
  const known = STATUSES.includes(status) || status === 'done';
  return `tnb-status tnb-status-${known ? status : 'other'}`;
}
