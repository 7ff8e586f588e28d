/**
 * One POST of a notification to a subscriber's endpoint: to the addresses the endpoint policy checked
 * (endpoint-policy.ts), within the subscription's timeout, following no redirect, reading at most a
 * little of the answer. A failure says what happened in words fit for the subscriber's `error`.
 */
import http from 'node:http';
import https from 'node:https';
import type { Bundle } from '@medplum/fhirtypes';
import type { EndpointPolicy } from './endpoint-policy.ts';

export class DeliveryError extends Error {}

const MAX_ANSWER_BYTES = 64 * 1024;
const UNREACHABLE = 'the endpoint could not be reached, or did not answer in time';

export async function postNotification(
  policy: EndpointPolicy,
  endpoint: string,
  bundle: Bundle,
  headers: readonly [string, string][],
  timeoutSeconds: number,
): Promise<number> {
  let url: URL;
  try {
    url = await policy.check(endpoint);
  } catch (err) {
    throw new DeliveryError(err instanceof Error ? err.message : 'endpoint refused');
  }
  const body = Buffer.from(JSON.stringify(bundle));
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<number>((resolve, reject) => {
    const request = transport.request(
      url,
      {
        method: 'POST',
        lookup: policy.checkedLookup(url),
        headers: {
          ...Object.fromEntries(headers),
          'Content-Type': 'application/fhir+json',
          'Content-Length': String(body.length),
        },
        timeout: timeoutSeconds * 1000,
        signal: AbortSignal.timeout(timeoutSeconds * 1000),
      },
      (response) => {
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > MAX_ANSWER_BYTES) {
            response.destroy();
          }
        });
        response.on('error', () => undefined);
        response.on('close', () => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(status);
          } else {
            reject(new DeliveryError(`the endpoint answered HTTP ${status}`));
          }
        });
        response.resume();
      },
    );
    request.on('timeout', () => request.destroy(new DeliveryError(UNREACHABLE)));
    request.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof DeliveryError) {
        reject(err);
      } else if (err.name === 'AbortError' || err.name === 'TimeoutError') {
        reject(new DeliveryError(UNREACHABLE));
      } else {
        // One text for refused, unreachable and silent: the subscriber learns no more about a network.
        reject(new DeliveryError(UNREACHABLE));
      }
    });
    request.end(body);
  });
}
