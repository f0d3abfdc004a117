/**
 * The server extension's REST API (`twister_nb/server`, under `/twister2/api/`),
 * typed. Every request goes through Jupyter's `ServerConnection`, so it carries
 * the server's token or cookie and XSRF header, as JupyterLab's own requests do.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The process that drives a job: a kernel of this server, or another process. */
export interface IDriver {
  kind: 'kernel' | 'process';
  host: string;
  pid: number;
  since: number | null;
  kernel_id?: string;
  kernel_name?: string;
  /** The notebook of the driving kernel's session ('' if none). */
  path?: string;
}

/** Tasks done of all tasks of the running action. */
export interface IProgress {
  done: number;
  total: number;
  fraction: number;
}

/** The latest or running action of a live job. */
export interface IAction {
  action: number;
  kind: string;
  label: string;
  state?: string;
  error?: string | null;
  started?: number;
  since?: number;
}

/** One job of the list (`GET jobs`). */
export interface IJob {
  job_id: string;
  name: string;
  status: string;
  live: boolean;
  workers: number;
  cached: number;
  persisted: number;
  checkpoints: number;
  created: number | null;
  age: number | null;
  driver: IDriver | null;
  last_action: IAction | null;
  running: IAction | null;
  progress: IProgress | null;
}

/** One stage of an action, as the dashboard folds it. */
export interface IStage {
  action: number;
  action_kind: string;
  index: number;
  label: string;
  tsets: string[];
  tset_ids: string[];
  names: string[];
  tasks: number;
  done: number;
  records_in: number;
  records_out: number;
  state: string;
}

/** One job in full (`GET jobs/<id>`). */
export interface IJobDetail extends IJob {
  record: Record<string, any>;
  info: Record<string, any> | null;
  dashboard: Record<string, any> | null;
  dashboard_html: string | null;
  stages: IStage[];
  tset_status: Record<string, string>;
  checkpoint_list: Array<Record<string, any>>;
  errors: string[];
  cursor: number;
  restartable: boolean;
}

/** One event, as `Event.to_dict()` gives it. */
export interface IEvent {
  kind: string;
  seq: number;
  time: number;
  [field: string]: any;
}

/** The answer of `GET jobs/<id>/events`. */
export interface IEvents {
  events: IEvent[];
  cursor: number;
  live: boolean;
}

/** The job operations of `POST jobs/<id>/<operation>`. */
export type Operation = 'cancel' | 'close' | 'clear' | 'restart';

/** An error of the API, with the server's one-line message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** A request to the API; its JSON answer, or an `ApiError` with the server's message. */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'twister2', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let body: any = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text };
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.message) || response.statusText);
  }
  return body as T;
}

/** Every job, live and recorded. */
export async function listJobs(): Promise<IJob[]> {
  return (await requestAPI<{ jobs: IJob[] }>('jobs')).jobs;
}

/** One job in full. */
export function getJob(jobId: string): Promise<IJobDetail> {
  return requestAPI<IJobDetail>(`jobs/${encodeURIComponent(jobId)}`);
}

/** The job's events from `cursor`, waiting up to `timeout` seconds for one. */
export function getEvents(jobId: string, cursor: number, timeout = 0): Promise<IEvents> {
  const query = URLExt.objectToQueryString({ cursor, timeout });
  return requestAPI<IEvents>(`jobs/${encodeURIComponent(jobId)}/events${query}`);
}

/** Run an operation on the job. */
export function operate(jobId: string, operation: Operation): Promise<Record<string, any>> {
  return requestAPI(`jobs/${encodeURIComponent(jobId)}/${operation}`, { method: 'POST' });
}
