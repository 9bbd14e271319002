import { fmt, median } from './stats.js'
import type { Row } from './types.js'

/**
 * Median faultline over median baseline, for rounds run in turn (per-round
 * ratios were tried there: under bursty load from other processes a round's
 * two runs, seconds apart, are no more alike than any two, and their median
 * swung more than this). For rounds that ran both variants at once, the
 * median of the rounds' ratios: there each pair saw the same machine.
 */
export function ratioOf (row: Row): number {
  if (row.paired === true) return median(row.faultline.map((value, i) => value / row.baseline[i]!))
  return median(row.faultline) / median(row.baseline)
}

export function verdictOf (row: Row): { target: string, pass: boolean | undefined } {
  if (row.verdict !== undefined) return row.verdict
  if (row.target === undefined) return { target: 'report', pass: undefined }
  const ratio = ratioOf(row)
  return row.better === 'higher'
    ? { target: `>= ${row.target.toFixed(2)}x`, pass: ratio >= row.target }
    : { target: `<= ${row.target.toFixed(2)}x`, pass: ratio <= row.target }
}

function spread (values: readonly number[]): string {
  return values.length < 2 ? '' : ` (${fmt(Math.min(...values))}-${fmt(Math.max(...values))})`
}

/** A Markdown table: readable in a terminal, pasteable into docs. */
export function renderTable (rows: readonly Row[], withSpread = false): string {
  const lines = [['case', 'baseline', 'faultline', 'ratio', 'target', 'result']]
  for (const row of rows) {
    const { target, pass } = verdictOf(row)
    const value = (values: number[]): string => `${fmt(median(values))} ${row.unit}${withSpread ? spread(values) : ''}`
    lines.push([
      row.name,
      row.text?.baseline ?? value(row.baseline),
      row.text?.faultline ?? value(row.faultline),
      row.text === undefined ? `${ratioOf(row).toFixed(3)}x` : '-',
      target,
      pass === undefined ? 'reported' : pass ? 'pass' : 'FAIL'
    ])
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map(l => l[i]!.length)))
  const render = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |'
  return [render(lines[0]!), '|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|', ...lines.slice(1).map(render)].join('\n')
}
