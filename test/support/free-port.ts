/**
 * Free TCP ports on the loopback interface, for the hubs, DIMSE peers and benchmarks that tests start.
 * Imports nothing of the hub's, so a benchmark driver can use it without loading the hub.
 */
import net from 'node:net';

/** Ports this process handed out: the OS may give a just-closed port again to the next caller. */
const handedOut = new Set<number>();

/** A free port on 127.0.0.1, never one this process handed out before (two hubs started at once got the same one). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await anyFreePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port that this process has not handed out already');
}

function anyFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}
