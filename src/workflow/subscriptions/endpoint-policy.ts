/**
 * Where the hub may post notifications (docs/api.md, "Subscriptions"): never to an address the
 * operator has not allowed. By default only public addresses are, over https; loopback, private,
 * link-local, shared, multicast and reserved ranges are refused unless SUBSCRIPTION_ALLOWED_NETWORKS
 * names them (a hospital's own network), and an endpoint inside an allowed network may use http.
 *
 * A host name is checked by every address it resolves to in DNS (A and AAAA; not /etc/hosts), when
 * the Subscription is written and again at each delivery, and the delivery connects to the addresses
 * that were checked (`checkedLookup`), so a name that later resolves elsewhere (DNS rebinding) reaches
 * nothing it should not.
 */
import dns from 'node:dns';
import net from 'node:net';
import type { LookupFunction } from 'node:net';

/** Ranges that are not the public internet (IANA special-purpose registries), refused by default. */
const REFUSED_V4: readonly [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
/**
 * IPv6 outside global unicast (2000::/3) is refused whole (the unspecified and loopback addresses,
 * IPv4-compatible ::/96, NAT64, unique local, link-local, site-local, multicast); inside it, the
 * ranges that tunnel to IPv4 addresses (Teredo, 6to4) or are not routed (documentation, ORCHID).
 */
const GLOBAL_V6: readonly [string, number] = ['2000::', 3];
const REFUSED_V6: readonly [string, number][] = [
  ['2001::', 32],
  ['2001:10::', 28],
  ['2001:20::', 28],
  ['2001:db8::', 32],
  ['2002::', 16],
];
/** How long a name may take to resolve; resolution uses c-ares, not the libuv thread pool. */
const RESOLVE_TIMEOUT_MS = 2000;

export class EndpointRefusedError extends Error {}

export interface EndpointPolicyOptions {
  /** CIDR blocks the operator allows even though they are not public (SUBSCRIPTION_ALLOWED_NETWORKS). */
  allowedNetworks: readonly string[];
}

/** `::ffff:10.0.0.1` is 10.0.0.1: checked as IPv4, so a mapped address cannot slip past the IPv4 ranges. */
function unmapped(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped?.[1] ?? address;
}

function family(address: string): 'ipv4' | 'ipv6' {
  return net.isIPv4(address) ? 'ipv4' : 'ipv6';
}

export class EndpointPolicy {
  private readonly refused = new net.BlockList();
  private readonly globalV6 = new net.BlockList();
  private readonly allowed = new net.BlockList();
  private readonly resolver = new dns.promises.Resolver({ timeout: RESOLVE_TIMEOUT_MS, tries: 2 });

  constructor(options: EndpointPolicyOptions) {
    for (const [address, prefix] of REFUSED_V4) {
      this.refused.addSubnet(address, prefix, 'ipv4');
    }
    for (const [address, prefix] of REFUSED_V6) {
      this.refused.addSubnet(address, prefix, 'ipv6');
    }
    this.globalV6.addSubnet(GLOBAL_V6[0], GLOBAL_V6[1], 'ipv6');
    for (const cidr of options.allowedNetworks) {
      const [address = '', prefixText] = cidr.split('/');
      const type = family(address);
      const prefix = prefixText === undefined ? (type === 'ipv4' ? 32 : 128) : Number(prefixText);
      if (!net.isIP(address) || !Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) {
        throw new Error(`SUBSCRIPTION_ALLOWED_NETWORKS: "${cidr}" is not a CIDR block`);
      }
      this.allowed.addSubnet(address, prefix, type);
    }
  }

  /** 'allowed-network' (http allowed), 'public' (https only), or 'refused'. */
  classify(rawAddress: string): 'allowed-network' | 'public' | 'refused' {
    const address = unmapped(rawAddress);
    if (!net.isIP(address)) {
      return 'refused';
    }
    const type = family(address);
    if (this.allowed.check(address, type)) {
      return 'allowed-network';
    }
    if (type === 'ipv6' && !this.globalV6.check(address, type)) {
      return 'refused';
    }
    return this.refused.check(address, type) ? 'refused' : 'public';
  }

  /**
   * The endpoint's URL when the hub may post to it; throws EndpointRefusedError with a reason fit for
   * the client (it names the endpoint's host, which the client wrote, never what it resolved to).
   */
  async check(endpoint: string): Promise<URL> {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new EndpointRefusedError('channel.endpoint is not an absolute URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new EndpointRefusedError('channel.endpoint must be an http or https URL');
    }
    if (url.username || url.password) {
      throw new EndpointRefusedError('channel.endpoint must not carry credentials; use channel.header');
    }
    const addresses = await this.resolve(url.hostname);
    this.assertAllowed(url, addresses);
    return url;
  }

  private assertAllowed(url: URL, addresses: readonly string[]): void {
    const classes = addresses.map((address) => this.classify(address));
    if (classes.length === 0 || classes.includes('refused')) {
      throw new EndpointRefusedError(
        `channel.endpoint host "${url.hostname}" is not an address the hub may notify (not public, and not in SUBSCRIPTION_ALLOWED_NETWORKS)`,
      );
    }
    if (url.protocol === 'http:' && classes.includes('public')) {
      throw new EndpointRefusedError('channel.endpoint must use https outside the networks the operator allowed');
    }
  }

  private async resolve(hostname: string): Promise<string[]> {
    const bare = hostname.replace(/^\[(.*)\]$/, '$1');
    if (net.isIP(bare)) {
      return [bare];
    }
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(bare), this.resolver.resolve6(bare)]);
    const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (addresses.length === 0) {
      throw new EndpointRefusedError(`channel.endpoint host "${hostname}" does not resolve (in DNS)`);
    }
    return addresses;
  }

  /**
   * A `lookup` for http(s).request that resolves as the system does and answers only with addresses
   * the policy allows (an IP literal never reaches a lookup: `check` covers it before the request).
   */
  checkedLookup(url: URL): LookupFunction {
    return (hostname, options, callback) => {
      this.resolve(hostname)
        .then((addresses) => {
          this.assertAllowed(url, addresses);
          if (options.all) {
            callback(
              null,
              addresses.map((address) => ({ address, family: net.isIPv4(address) ? 4 : 6 })),
            );
          } else {
            const [first = ''] = addresses;
            callback(null, first, net.isIPv4(first) ? 4 : 6);
          }
        })
        .catch((err: unknown) => callback(err as NodeJS.ErrnoException, '', 0));
    };
  }
}
