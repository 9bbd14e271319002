// Coverage is measured on the package's own code only: lib/, plugins/,
// client/, otel/ and index.ts. Examples, benchmarks and test helpers are not
// held to the bar.
import { readdirSync } from 'node:fs'

const files = ['index.ts']
for (const dir of ['lib', 'plugins', 'client', 'otel']) {
  for (const name of readdirSync(new URL(`../${dir}/`, import.meta.url))) {
    if (name.endsWith('.ts')) files.push(`${dir}/${name}`)
  }
}

export default function coverageMap () {
  return files
}
