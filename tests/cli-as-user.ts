/**
 * Runs the CLI as an unprivileged user: `node --import tsx tests/cli-as-user.ts UID ARGS...`,
 * started as root. It loads the CLI's code first and only then gives up root (groups, gid, uid),
 * so the command itself runs without privileges while the checkout may sit where that user cannot
 * read (a clone under /root, or in a 0700 mktemp folder): spawning the child directly as that
 * user would fail to load the code at all, and never reach the error the test is about.
 */
import { main } from '../src/cli/program.js';
import { packageVersion } from '../src/util/version.js';

const [uidArg, ...args] = process.argv.slice(2);
const uid = Number(uidArg);
if (!Number.isInteger(uid) || uid < 0) {
  process.stderr.write(`cli-as-user: the first argument must be a numeric uid, got ${uidArg}\n`);
  process.exit(64);
}
// Files the commands read lazily, read now while they are still readable (require caches them).
packageVersion();
if (process.getuid?.() === 0) {
  process.setgroups?.([]);
  process.setgid?.(uid);
  process.setuid?.(uid);
}
main([process.argv[0]!, 'ctta', ...args]).then((code) => process.exit(code));
