import {fill, heading} from '../dom.js';

export async function render(main) {
  fill(main, heading('Not built yet'));
}
