// autocannon ships no types; this is the slice of its programmatic API the
// benchmarks use.
declare module 'autocannon' {
  interface AutocannonOptions {
    url: string
    connections?: number
    pipelining?: number
    duration?: number
    amount?: number
    timeout?: number
    headers?: Record<string, string>
  }

  interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    p50: number
    p90: number
    p99: number
  }

  interface AutocannonResult {
    requests: Histogram & { total: number }
    latency: Histogram
    throughput: Histogram
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    '2xx': number
    '4xx': number
    '5xx': number
  }

  function autocannon (opts: AutocannonOptions): Promise<AutocannonResult>
  export default autocannon
}
