// MathJax 3 settings for pymdownx.arithmatex (generic mode); tex-svg.js itself is copied from the
// django-static-mathjax package at build time (docs/hooks.py), so no CDN is needed.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"},
};
document$.subscribe(() => { if (window.MathJax.typesetPromise) { MathJax.typesetPromise(); } });
