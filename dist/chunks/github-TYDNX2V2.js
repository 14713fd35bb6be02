import { createRequire as __nvvCreateRequire } from 'node:module';
import { fileURLToPath as __nvvFileURLToPath } from 'node:url';
import { dirname as __nvvDirname } from 'node:path';
const require = __nvvCreateRequire(import.meta.url);
const __nvv_filename = __nvvFileURLToPath(import.meta.url);
const __nvv_dirname = __nvvDirname(__nvv_filename);
import{context,getOctokit}from"./chunk-TEBVWOZ5.js";import"./chunk-SUTDSU6S.js";import"./chunk-MTVND6B3.js";export{context,getOctokit};
