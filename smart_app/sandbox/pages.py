"""HTML pages of the sandbox (chart, patient list, authorize errors), from inline templates."""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape
from starlette.responses import HTMLResponse

from smart_app.sandbox.config import SANDBOX_NAME

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} - {{ sandbox }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222}
header.ehr{background:#1f3b57;color:#fff;padding:.5rem 1rem;display:flex;
 justify-content:space-between;align-items:center}
header.ehr a{color:#fff}
.banner{background:#e8eef4;padding:.5rem 1rem;border-bottom:1px solid #bcc}
.banner span{margin-right:1.5rem}
.layout{display:flex}
nav.menu{width:13rem;padding:1rem;border-right:1px solid #ccc;min-height:900px}
nav.menu a{display:block;padding:.3rem 0}
nav.menu a.active{font-weight:bold}
main{padding:1rem;flex:1}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd}
.error{color:#a00}
</style></head><body>
<header class="ehr"><strong><a href="/ehr/">{{ sandbox }}</a></strong>{% block user %}{% endblock %}
</header>
{% block body %}{% endblock %}
</body></html>"""

_MESSAGE = """{% extends "base.html" %}{% block body %}<main>
<h1 class="error">{{ title }}</h1><p>{{ message }}</p></main>{% endblock %}"""

_PATIENTS = """{% extends "base.html" %}{% block body %}<main><h1>Patients</h1>
<table><thead><tr><th>Name</th><th>Birth date</th><th>Gender</th><th></th></tr></thead><tbody>
{% for p in patients %}<tr><td>{{ p.name }}</td><td>{{ p.birth_date }}</td><td>{{ p.gender }}</td>
<td><a href="{{ p.href }}">Open chart</a></td></tr>
{% else %}<tr><td colspan="4">No patients are loaded.</td></tr>{% endfor %}
</tbody></table></main>{% endblock %}"""

_PICKER = """{% extends "base.html" %}{% block body %}<main>
<h1>Select a patient</h1><p>{{ client_id }} asks for a patient context.</p><ul>
{% for p in patients %}<li><a href="{{ p.href }}">{{ p.name }}</a> ({{ p.birth_date }})</li>
{% endfor %}</ul></main>{% endblock %}"""

_SIGN_IN = """{% extends "base.html" %}{% block body %}<main>
<h1>Sign in</h1><p>{{ client_id }} asks you to sign in with your EHR account.</p><ul class="sign-in">
{% for u in users %}<li><a href="{{ u.href }}">{{ u.label }}</a></li>
{% endfor %}</ul></main>{% endblock %}"""

_CHART = """{% extends "base.html" %}
{% block user %}<form method="get" action="" class="user-picker">
<label for="user">Signed in as</label>
<select id="user" name="user">{% for u in users %}
<option value="{{ u.id }}"{% if u.id == user_id %} selected{% endif %}>{{ u.label }}</option>
{% endfor %}</select>
<input type="hidden" name="view" value="{{ view }}"><button type="submit">Switch user</button>
</form>{% endblock %}
{% block body %}
<section class="banner" aria-label="Patient">
<span><strong>{{ patient.name }}</strong></span><span>DOB {{ patient.birth_date }}</span>
<span>{{ patient.gender }}</span><span>MRN {{ patient.mrn }}</span></section>
<div class="layout"><nav class="menu" aria-label="Chart">
{% for key, label in menu %}<a href="?view={{ key }}"{% if key == view %} class="active"
 aria-current="page"{% endif %}>{{ label }}{% if key == view %} (active){% endif %}</a>
{% endfor %}</nav>
<main>{% if view == "app" %}
 {% if launch_src %}<iframe src="{{ launch_src }}" title="Care coordination app"
 width="1024" height="900" style="width:100%;min-width:800px;height:900px;border:0"></iframe>
 {% else %}<p class="notice">No app launch URL is configured for this sandbox, so the care
 coordination app cannot be shown here.</p>{% endif %}
{% else %}<h1>{{ section_title }}</h1>
 <table><tbody>{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
 {% else %}<tr><td>Nothing recorded.</td></tr>{% endfor %}</tbody></table>
{% endif %}</main></div>{% endblock %}"""

_ENV = Environment(
    loader=DictLoader({"base.html": _BASE, "message.html": _MESSAGE, "patients.html": _PATIENTS,
                       "picker.html": _PICKER, "chart.html": _CHART,
                       "sign_in.html": _SIGN_IN}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(template: str, status: int = 200, headers: dict[str, str] | None = None,
           **context: object) -> HTMLResponse:
    """Render one of the inline templates as an HTML response."""
    html = _ENV.get_template(template).render(sandbox=SANDBOX_NAME, **context)
    return HTMLResponse(html, status_code=status, headers=headers)


def message_page(title: str, message: str, status: int) -> HTMLResponse:
    """A plain page saying what went wrong."""
    return render("message.html", status=status, title=title, message=message)
