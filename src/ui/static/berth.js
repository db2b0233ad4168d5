// berth dashboard: small enhancements only. Every page reads and works without this file.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Plain-HTTP pages have no clipboard API: copy through a hidden text area.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try {
    document.execCommand("copy");
  } finally {
    area.remove();
  }
  return Promise.resolve();
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy[data-copy]");
  if (!button) return;
  event.preventDefault();
  copyText(button.dataset.copy).then(() => {
    button.classList.add("copied");
    button.setAttribute("aria-label", "Copied");
    setTimeout(() => button.classList.remove("copied"), 1500);
  });
});

// Select the whole pull command with one click.
document.addEventListener("click", (event) => {
  const code = event.target.closest("code.pull-command");
  if (!code) return;
  const range = document.createRange();
  range.selectNodeContents(code);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
});
