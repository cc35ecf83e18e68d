def render_html(c): return ""
