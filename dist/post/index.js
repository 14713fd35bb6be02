import { fileURLToPath as __nvvFileURLToPath } from 'node:url';
import { dirname as __nvvDirname } from 'node:path';
const __filename = __nvvFileURLToPath(import.meta.url);
const __dirname = __nvvDirname(__filename);
/******/ /* webpack/runtime/compat */
/******/ 
/******/ if (typeof __nccwpck_require__ !== 'undefined') __nccwpck_require__.ab = new URL('.', import.meta.url).pathname.slice(import.meta.url.match(/^file:\/\/\/\w:/) ? 1 : 0, -1) + "/";
/******/ 
/************************************************************************/
var __webpack_exports__ = {};

;// CONCATENATED MODULE: ./src/action/post.ts
async function runPost() {
    // finishes what main could not (issue 3)
}

;// CONCATENATED MODULE: ./src/post.ts

void runPost();

