// The student records page: list, search, sort, create, edit and delete
// through the service's own REST API (/api/v1/students). No dependencies, no
// build step; it must run under a CSP without inline script or style, so the
// DOM is built with textContent and attributes only, never innerHTML.
//
// Pages are walked by cursor (the API's next_cursor), which costs the same
// at any depth; "Previous page" goes back through the cursors already seen.
// The API's total is exact up to 1,000 matches and an estimate beyond
// (docs/api.md), or null when no estimate exists: the page says "about" or
// leaves the count out accordingly.

const API = '/api/v1/students';
const PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 250;
// Below this delay a reload shows no loading state, so typing does not flicker.
const LOADING_DELAY_MS = 150;
const FIELDS = ['name', 'email', 'domain', 'gpa'];
// The API answers 400 to a shorter search: no index serves it at scale.
const MIN_SEARCH_CHARS = 3;
// Totals above this are the database's estimate (Prefer: count=estimated).
const EXACT_TOTAL_UP_TO = 1000;
const DEFAULT_SORT = 'id';
const NUMBER = new Intl.NumberFormat('en');

const $ = (id) => document.getElementById(id);

const state = {
  q: '',
  sort: DEFAULT_SORT, // the API's sort: a key, '-' in front for descending
  cursor: null, // cursor of the page shown; null for the first page
  previous: [], // cursors of the pages before it, the first page's as null
  nextCursor: null, // null on the last page
  total: null, // null when the API has no estimate
  students: [],
  request: null, // AbortController of the list request in flight
  editing: null, // the student being edited; null when creating
  deleting: null,
  opener: null, // element to focus again when a dialog closes
};

// ------------------------------------------------------------------ API

/** An answer of the API that was not a success, with its problem document. */
class ApiFailure extends Error {
  constructor(status, problem) {
    super(problem?.detail || `request failed with status ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body, signal, headers = {}) {
  const init = { method, headers: { accept: 'application/json', ...headers }, signal };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    // No answer at all: the service is down or the network is gone.
    throw new ApiFailure(0, null);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiFailure(response.status, data);
  return data;
}

/** A sentence for a failure that is not about one field. */
function describe(err) {
  if (err.status === 0) return 'The service cannot be reached. Check your connection and try again.';
  if (err.status === 503) return 'The service is unavailable right now. Try again in a few seconds.';
  if (err.status === 507) return 'The service has no space left to save changes. Reading still works; try again later.';
  if (err.status >= 500) return 'The service failed to handle the request. Try again.';
  return err.message;
}

// ------------------------------------------------------------------ list

function show(element, visible) {
  element.hidden = !visible;
}

function setListState(kind, message = '') {
  show($('state-loading'), kind === 'loading');
  show($('state-empty'), kind === 'empty');
  show($('state-error'), kind === 'error');
  show($('students'), kind === 'list');
  show($('pager'), kind === 'list' && (state.previous.length > 0 || state.nextCursor !== null));
  if (kind === 'empty') $('state-empty').textContent = message;
  if (kind === 'error') $('state-error-text').textContent = message;
}

async function load() {
  state.request?.abort();
  const controller = new AbortController();
  state.request = controller;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.sort !== DEFAULT_SORT) params.set('sort', state.sort);
  if (state.q) params.set('q', state.q);
  if (state.cursor) params.set('cursor', state.cursor);

  $('students').setAttribute('aria-busy', 'true');
  const loadingTimer = setTimeout(() => {
    setListState('loading');
    $('total').textContent = '';
  }, LOADING_DELAY_MS);
  try {
    const page = await api('GET', `${API}?${params}`, undefined, controller.signal, {
      prefer: 'count=estimated',
    });
    // A delete can leave the last page empty: step back a page.
    if (page.data.length === 0 && state.previous.length > 0) {
      state.cursor = state.previous.pop();
      clearTimeout(loadingTimer);
      return load();
    }
    state.students = page.data;
    state.total = page.total ?? null;
    state.nextCursor = page.has_more ? page.next_cursor : null;
    render();
  } catch (err) {
    if (err.name === 'AbortError') return undefined;
    if (err.status === 400 && state.cursor) {
      // A cursor the service no longer accepts (say, from before an
      // upgrade): start again from the first page.
      resetPaging();
      clearTimeout(loadingTimer);
      return load();
    }
    state.students = [];
    $('total').textContent = '';
    setListState('error', describe(err));
    $('status').textContent = 'Loading students failed.';
  } finally {
    clearTimeout(loadingTimer);
    if (state.request === controller) {
      state.request = null;
      $('students').removeAttribute('aria-busy');
    }
  }
  return undefined;
}

/** "25", "about 12,000", or null when the API gave no count. */
function formatTotal(total) {
  if (total === null) return null;
  return total > EXACT_TOTAL_UP_TO ? `about ${NUMBER.format(total)}` : NUMBER.format(total);
}

function render() {
  const { students, total, q } = state;
  const totalText = formatTotal(total);
  $('total').textContent = totalText === null ? '' : `(${totalText})`;
  syncSortControls();
  if (students.length === 0) {
    const message = q ? `No students match “${q}”.` : 'No students yet. Create the first one with “New student”.';
    setListState('empty', message);
    $('status').textContent = message;
    return;
  }
  const rows = students.map(renderRow);
  $('rows').replaceChildren(...rows);
  // Earlier pages were full when they were shown.
  const first = state.previous.length * PAGE_SIZE + 1;
  const last = first + students.length - 1;
  const range = `${NUMBER.format(first)}–${NUMBER.format(last)}`;
  $('page-info').textContent = totalText === null ? range : `${range} of ${totalText}`;
  $('prev').disabled = state.previous.length === 0;
  $('next').disabled = state.nextCursor === null;
  setListState('list');
  const counted = totalText === null ? 'Students' : `${totalText} ${total === 1 ? 'student' : 'students'}`;
  $('status').textContent = `${counted}${q ? ` matching “${q}”` : ''}, showing ${first} to ${last}.`;
}

function resetPaging() {
  state.cursor = null;
  state.previous = [];
  state.nextCursor = null;
}

function cell(text, label, className) {
  const td = document.createElement('td');
  td.textContent = text;
  td.dataset.label = label;
  if (className) td.className = className;
  return td;
}

function renderRow(student) {
  const tr = document.createElement('tr');
  tr.dataset.id = String(student.id);
  const name = document.createElement('th');
  name.scope = 'row';
  name.textContent = student.name;
  name.dataset.label = 'Name';
  const actions = document.createElement('td');
  actions.className = 'row-actions';
  const edit = document.createElement('button');
  edit.type = 'button';
  edit.textContent = 'Edit';
  edit.setAttribute('aria-label', `Edit ${student.name}`);
  edit.addEventListener('click', () => openEditor(student, edit));
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'danger-outline';
  remove.textContent = 'Delete';
  remove.setAttribute('aria-label', `Delete ${student.name}`);
  remove.addEventListener('click', () => openConfirm(student, remove));
  actions.append(edit, remove);
  tr.append(
    name,
    cell(student.email, 'Email'),
    cell(student.domain, 'Field of study'),
    cell(formatGpa(student.gpa), 'GPA', 'num'),
    cell(formatDate(student.created_at), 'Created'),
    actions,
  );
  return tr;
}

function formatGpa(gpa) {
  return Number.isInteger(gpa) ? gpa.toFixed(1) : String(gpa);
}

/** The day of an RFC 3339 UTC timestamp, as YYYY-MM-DD: one format for every reader. */
function formatDate(timestamp) {
  return String(timestamp).slice(0, 10);
}

// ------------------------------------------------------------------ sort

/** Column headers and the phone-sized screen's select show the current sort. */
function syncSortControls() {
  for (const th of document.querySelectorAll('th[data-sort]')) {
    const key = th.dataset.sort;
    if (state.sort === key) th.setAttribute('aria-sort', 'ascending');
    else if (state.sort === `-${key}`) th.setAttribute('aria-sort', 'descending');
    else th.removeAttribute('aria-sort');
  }
  $('sort').value = state.sort;
}

/** A click on a column: ascending first, then each click turns the order round. */
function onSortHeader(key) {
  setSort(state.sort === key ? `-${key}` : key);
}

function setSort(sort) {
  state.sort = sort;
  resetPaging();
  syncSortControls();
  load();
}

// ---------------------------------------------------------------- search

let searchTimer = null;

function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(applySearch, SEARCH_DELAY_MS);
}

/** The hint under the search box; a warning while the text is too short. */
function showSearchHint(tooShort) {
  const hint = $('search-hint');
  hint.classList.toggle('hint-warning', tooShort);
  hint.textContent = tooShort
    ? `Type at least ${MIN_SEARCH_CHARS} characters to search; showing every student.`
    : `Type at least ${MIN_SEARCH_CHARS} characters of a name or email.`;
}

function applySearch() {
  clearTimeout(searchTimer);
  const typed = $('search').value.trim();
  // Counted as the API counts: Unicode characters, not UTF-16 units.
  const tooShort = typed !== '' && [...typed].length < MIN_SEARCH_CHARS;
  showSearchHint(tooShort);
  const q = tooShort ? '' : typed;
  if (tooShort) $('status').textContent = $('search-hint').textContent;
  if (q === state.q) return;
  state.q = q;
  resetPaging();
  load();
}

// ---------------------------------------------------------------- editor

function clearErrors() {
  for (const field of FIELDS) setFieldError(field, []);
  $('form-error').hidden = true;
  $('form-error').textContent = '';
}

function setFieldError(field, messages) {
  const input = $(`f-${field}`);
  const note = $(`f-${field}-error`);
  if (messages.length > 0) {
    input.setAttribute('aria-invalid', 'true');
    note.textContent = messages.join('; ');
    note.hidden = false;
  } else {
    input.removeAttribute('aria-invalid');
    note.textContent = '';
    note.hidden = true;
  }
}

function openEditor(student, opener) {
  state.editing = student;
  state.opener = opener;
  clearErrors();
  $('student-dialog-title').textContent = student ? `Edit ${student.name}` : 'New student';
  $('f-name').value = student?.name ?? '';
  $('f-email').value = student?.email ?? '';
  $('f-domain').value = student?.domain ?? '';
  $('f-gpa').value = student ? String(student.gpa) : '';
  $('student-save').disabled = false;
  $('student-dialog').showModal();
  $('f-name').focus();
}

/** The body to send: text as typed, GPA as a number when it reads as one. */
function formBody() {
  const body = {
    name: $('f-name').value,
    email: $('f-email').value,
    domain: $('f-domain').value,
  };
  const gpa = $('f-gpa').value.trim().replace(',', '.');
  if (gpa !== '') body.gpa = /^[+-]?(\d+\.?\d*|\.\d+)$/.test(gpa) ? Number(gpa) : gpa;
  return body;
}

async function onSave(event) {
  event.preventDefault();
  const save = $('student-save');
  if (save.disabled) return;
  clearErrors();
  save.disabled = true;
  save.textContent = 'Saving…';
  const editing = state.editing;
  try {
    if (editing) {
      await api('PUT', `${API}/${editing.id}`, formBody());
    } else {
      await api('POST', API, formBody());
    }
    closeDialog('student-dialog');
    $('status').textContent = editing ? 'Student saved.' : 'Student created.';
    if (!editing) {
      // Show the new student: the newest comes first in that order, on the
      // first page of the whole list.
      state.sort = '-created';
      state.q = '';
      $('search').value = '';
      showSearchHint(false);
      resetPaging();
    }
    await load();
  } catch (err) {
    // The dialog stays open with everything as typed.
    showSaveError(err);
  } finally {
    save.disabled = false;
    save.textContent = 'Save';
  }
}

function showSaveError(err) {
  const errors = err.status === 422 ? err.problem?.errors : null;
  let focusField = null;
  const other = [];
  if (errors) {
    for (const [field, messages] of Object.entries(errors)) {
      if (FIELDS.includes(field)) {
        setFieldError(field, messages);
        focusField ??= field;
      } else {
        other.push(`${field}: ${messages.join('; ')}`);
      }
    }
  } else if (err.status === 409) {
    setFieldError('email', [err.problem?.detail || 'This email address is already used by another student.']);
    focusField = 'email';
  } else if (err.status === 404 && state.editing) {
    other.push('This student no longer exists; it may have been deleted elsewhere.');
  } else {
    other.push(describe(err));
  }
  if (other.length > 0) {
    $('form-error').textContent = other.join(' ');
    $('form-error').hidden = false;
  }
  // The first field in form order that has an error takes the focus.
  const first = FIELDS.find((f) => $(`f-${f}`).getAttribute('aria-invalid') === 'true') ?? focusField;
  if (first) $(`f-${first}`).focus();
}

// ---------------------------------------------------------------- delete

function openConfirm(student, opener) {
  state.deleting = student;
  state.opener = opener;
  $('confirm-text').textContent = `Delete ${student.name} (${student.email})? This cannot be undone.`;
  $('confirm-error').hidden = true;
  $('confirm-delete').disabled = false;
  $('confirm-dialog').showModal();
  $('confirm-cancel').focus();
}

async function onConfirmDelete(event) {
  event.preventDefault();
  const button = $('confirm-delete');
  if (button.disabled || !state.deleting) return;
  button.disabled = true;
  $('confirm-error').hidden = true;
  try {
    await api('DELETE', `${API}/${state.deleting.id}`);
  } catch (err) {
    if (err.status !== 404) {
      $('confirm-error').textContent = describe(err);
      $('confirm-error').hidden = false;
      button.disabled = false;
      return;
    }
    // Already gone: the outcome the user asked for.
  }
  const name = state.deleting.name;
  state.deleting = null;
  // The row's own button disappears: focus the heading above the list.
  state.opener = $('students-heading');
  closeDialog('confirm-dialog');
  $('status').textContent = `${name} deleted.`;
  await load();
}

// --------------------------------------------------------------- dialogs

function closeDialog(id) {
  const dialog = $(id);
  if (dialog.open) dialog.close();
}

function onDialogClose() {
  const opener = state.opener;
  state.opener = null;
  if (opener && document.contains(opener)) opener.focus();
  else $('students-heading').focus();
}

// ------------------------------------------------------------------ init

function init() {
  $('search').addEventListener('input', onSearchInput);
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    applySearch();
  });
  $('prev').addEventListener('click', () => {
    if (state.previous.length === 0) return;
    state.cursor = state.previous.pop();
    load();
  });
  $('next').addEventListener('click', () => {
    if (state.nextCursor === null) return;
    state.previous.push(state.cursor);
    state.cursor = state.nextCursor;
    // Used once: a second click before the page arrives must not skip ahead.
    state.nextCursor = null;
    $('next').disabled = true;
    load();
  });
  for (const th of document.querySelectorAll('th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => onSortHeader(th.dataset.sort));
  }
  $('sort').addEventListener('change', (event) => setSort(event.currentTarget.value));
  $('retry').addEventListener('click', () => load());
  $('new-student').addEventListener('click', (event) => openEditor(null, event.currentTarget));
  $('student-form').addEventListener('submit', onSave);
  $('student-cancel').addEventListener('click', () => closeDialog('student-dialog'));
  $('confirm-form').addEventListener('submit', onConfirmDelete);
  $('confirm-cancel').addEventListener('click', () => closeDialog('confirm-dialog'));
  $('student-dialog').addEventListener('close', onDialogClose);
  $('confirm-dialog').addEventListener('close', onDialogClose);
  load();
}

init();
