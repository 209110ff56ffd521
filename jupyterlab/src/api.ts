/**
 * The server extension's API (`<base_url>/kale/...`), through JupyterLab's own
 * connection settings: the token and XSRF header every Jupyter request carries.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IDiagnostic } from './diagnostics';
import { IInspectStep } from './dag';
import { IPipelineParameter } from './katib';

export interface IValidation {
  notebook: string;
  ok: boolean;
  errors: number;
  warnings: number;
  diagnostics: IDiagnostic[];
  pipeline: IPipelineDoc | null;
}

/** `kale inspect --json`. */
export interface IPipelineDoc {
  pipeline: { name: string; experiment: string; description: string };
  parameters: IPipelineParameter[];
  metrics: string[];
  steps: IInspectStep[];
  warnings: string[];
}

export interface IInfo {
  binary: string | null;
  version: string | null;
  problem: string | null;
  cluster: { found: boolean; how: string | null; where: string | null };
  kfp_endpoint: string | null;
}

export interface IJob {
  id: string;
  kind: string;
  notebook: string;
  started: number;
  finished: number | null;
  rc: number | null;
  events: number;
}

export interface IJobPoll extends IJob {
  since: number;
  new_events: any[];
  log: string[];
}

export class KaleError extends Error {}

export class KaleApi {
  constructor(private settings: ServerConnection.ISettings) {}

  async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, 'kale', path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (e) {
      throw new KaleError(`the server did not answer: ${e}`);
    }
    const text = await response.text();
    let data: any = text;
    try {
      data = text ? JSON.parse(text) : {};
    } catch {
      // An HTML error page.
    }
    if (!response.ok) {
      const message =
        (data && (data.message || data.reason)) || `${response.status} ${response.statusText}`;
      throw new KaleError(String(message));
    }
    return data as T;
  }

  private post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>(path, { method: 'POST', body: JSON.stringify(body) });
  }

  info(): Promise<IInfo> {
    return this.request('info');
  }

  validate(path: string, notebook: unknown): Promise<IValidation> {
    return this.post('validate', { path, notebook });
  }

  startJob(body: {
    kind: 'run' | 'tune' | 'katib' | 'submit';
    path: string;
    [key: string]: unknown;
  }): Promise<IJob> {
    return this.post('jobs', body);
  }

  jobs(): Promise<{ jobs: IJob[] }> {
    return this.request('jobs');
  }

  poll(id: string, since: number): Promise<IJobPoll> {
    return this.request(`jobs/${id}?since=${since}`);
  }

  stop(id: string): Promise<IJob> {
    return this.post(`jobs/${id}`, {});
  }

  experiments(path: string): Promise<any> {
    return this.request(`experiments?path=${encodeURIComponent(path)}`);
  }

  experiment(path: string, name: string): Promise<any> {
    return this.request(
      `experiments/show?path=${encodeURIComponent(path)}&name=${encodeURIComponent(name)}`
    );
  }

  plot(path: string, name: string, kind = 'history'): Promise<{ svg: string }> {
    return this.request(
      `experiments/plot?path=${encodeURIComponent(path)}&name=${encodeURIComponent(name)}&kind=${kind}`
    );
  }

  compare(path: string, names: string[]): Promise<{ experiments: any[]; svg: string }> {
    return this.post('experiments/compare', { path, names });
  }

  debug(path: string, run: string, step?: string): Promise<{ notebook: string; message: string }> {
    return this.post('debug', { path, run, step });
  }

  compile(path: string, target: 'kfp' | 'katib'): Promise<{ file: string; message: string }> {
    return this.post('compile', { path, target });
  }
}

/**
 * Follows a job to its end, handing each batch of new events to `onEvents`; resolves
 * with the last poll (its exit status and log).
 */
export async function follow(
  api: KaleApi,
  id: string,
  onEvents: (events: any[], poll: IJobPoll) => void,
  isCancelled: () => boolean = () => false
): Promise<IJobPoll> {
  let since = 0;
  let failures = 0;
  for (;;) {
    let poll: IJobPoll;
    try {
      poll = await api.poll(id, since);
      failures = 0;
    } catch (e) {
      failures += 1;
      if (failures > 5 || isCancelled()) {
        throw e;
      }
      await new Promise(r => setTimeout(r, 1000 * failures));
      continue;
    }
    since += poll.new_events.length;
    onEvents(poll.new_events, poll);
    if (poll.rc !== null && since >= poll.events) {
      return poll;
    }
    if (isCancelled()) {
      return poll;
    }
  }
}
