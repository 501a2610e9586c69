/** The command line as typed, with the program name normalised to `ctta` (recorded in manifests). */
export function reproduceCommand(): string {
  const args = process.argv.slice(2).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  return ['ctta', ...args].join(' ');
}
