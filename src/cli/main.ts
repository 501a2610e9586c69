#!/usr/bin/env node
import { main } from './program.js';

// Exit explicitly: the wasm backend installs process handlers that would otherwise print its
// whole module source on an unhandled error, and keep the process alive.
main(process.argv).then((code) => process.exit(code));
